<?php
/**
 * Issue 10 against the real bridge: gunicorn runs, its worker does not (never started, or killed).
 * tests/whmcs/test_php_module.py starts such a bridge and runs this group alone
 * (`phpunit --group no-worker`), then starts the worker and checks that the recorded call runs:
 *
 *   GEOCATLIVE_IDLE_BRIDGE_URL   the bridge without a worker, e.g. http://127.0.0.1:8001
 *   GEOCATLIVE_IDLE_TOKEN        a key with the whmcs scope
 *   GEOCATLIVE_SERVICE_ID_BASE   optional, default 9500: the service id is base+1
 *
 * The bridge must offer the example product busybox-demo.
 *
 * @group no-worker
 */

use PHPUnit\Framework\TestCase;
use WHMCS\Database\Capsule;
use WHMCS\Module\Server\Geocatlive\BridgeClient;

final class LiveBridgeWithoutWorkerTest extends TestCase
{
    /** @var string */
    private $url;
    /** @var string */
    private $token;

    protected function setUp(): void
    {
        $this->url = (string) getenv('GEOCATLIVE_IDLE_BRIDGE_URL');
        $this->token = (string) getenv('GEOCATLIVE_IDLE_TOKEN');
        if ($this->url === '' || $this->token === '') {
            $this->markTestSkipped('no bridge without a worker to test against: set GEOCATLIVE_IDLE_BRIDGE_URL and GEOCATLIVE_IDLE_TOKEN'
                . ' (tests/whmcs/test_php_module.py does)');
        }
        WhmcsRecorder::reset();
        Capsule::reset();
    }

    public function testACreateNoWorkerRunsIsARetryableErrorAndNothingIsLost(): void
    {
        $id = (int) (getenv('GEOCATLIVE_SERVICE_ID_BASE') ?: 9500) + 1;
        // A wait of 2 s that runs out: the operation is still pending, so the bridge answers queued.
        $params = WhmcsParams::service($id, $this->url, $this->token, ['username' => 'idle ' . $id, 'configoption3' => '2']);
        $result = geocatlive_CreateAccount($params);
        $this->assertMatchesRegularExpression('/^GeoCat Live: the bridge recorded the create \(operation #\d+\), but its worker is not running'
            . ' \(no worker heartbeat\), so nothing has been done yet\. Nothing is lost: /', $result);
        $this->assertStringContainsString('Retry it from Utilities > Module Queue', $result);

        $bridge = new BridgeClient($this->url, $this->token);
        $info = $bridge->get('/whmcs/v1/services/' . $id);
        $this->assertSame('pending', $info['status']);
        $this->assertSame(['create', 'pending'], [$info['operation']['kind'], $info['operation']['state']]);

        // The Module Queue's Retry: the same order and operation, the same answer; nothing doubles.
        $this->assertSame($result, geocatlive_CreateAccount($params));
        $again = $bridge->get('/whmcs/v1/services/' . $id);
        $this->assertSame($info['id'], $again['id']);
        $this->assertSame([$info['operation']['id']], array_column($again['recent_operations'], 'id'));

        // What the answer said on the wire, for the module log.
        $log = WhmcsRecorder::logOf('CreateAccount');
        $this->assertStringContainsString('"result":"queued"', $log[0]['response']);
        $this->assertStringContainsString('"worker":{"alive":false,"heartbeat_age_seconds":null}', $log[0]['response']);
        $this->assertSame('Being set up', geocatlive_ClientArea($params)['vars']['live']['statusLabel']);
    }
}
