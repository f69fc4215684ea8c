<?php
/**
 * What the test cases against the real bridge share (tests/whmcs/test_php_module.py starts it):
 *
 *   GEOCATLIVE_BRIDGE_URL       e.g. http://127.0.0.1:8000 (unset: the tests are skipped)
 *   GEOCATLIVE_TOKEN            a key with the whmcs scope
 *   GEOCATLIVE_SERVICE_ID_BASE  optional, default 9000: service ids are base+1, base+2, ...
 *
 * setUp() resets the WHMCS stand-ins and the request; params() builds a service's $params for the bridge;
 * eventually() polls with a deadline.
 */

use WHMCS\Database\Capsule;
use WHMCS\Module\Server\Geocatlive\BridgeClient;

trait LiveBridgeCase
{
    /** @var string */
    private $url;
    /** @var string */
    private $token;

    protected function setUp(): void
    {
        $this->url = (string) getenv('GEOCATLIVE_BRIDGE_URL');
        $this->token = (string) getenv('GEOCATLIVE_TOKEN');
        if ($this->url === '' || $this->token === '') {
            $this->markTestSkipped('no bridge to test against: set GEOCATLIVE_BRIDGE_URL and GEOCATLIVE_TOKEN (tests/whmcs/test_php_module.py does)');
        }
        WhmcsRecorder::reset();
        Capsule::reset();
        $_GET = $_POST = $_REQUEST = [];
    }

    protected function tearDown(): void
    {
        $_GET = $_POST = $_REQUEST = [];
    }

    private static function serviceId(int $offset): int
    {
        return (int) (getenv('GEOCATLIVE_SERVICE_ID_BASE') ?: 9000) + $offset;
    }

    private function params(int $serviceId, array $overrides = []): array
    {
        return WhmcsParams::service($serviceId, $this->url, $this->token, $overrides);
    }

    /** A client of the bridge for the test's own reads (not the module's). */
    private function bridge(): BridgeClient
    {
        return new BridgeClient($this->url, $this->token);
    }

    /**
     * Calls $probe until it answers something other than null, for at most $seconds.
     *
     * @return mixed what $probe answered
     */
    private static function eventually(callable $probe, int $seconds, string $what)
    {
        return Polling::eventually($probe, $seconds, $what);
    }
}
