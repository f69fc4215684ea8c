<?php
/**
 * Issue 16, ChangePassword: WHMCS's service password as the product's credential, against the real bridge
 * (gunicorn + worker + Docker), as tests/whmcs/test_php_module.py starts it:
 *
 *   GEOCATLIVE_BRIDGE_URL, GEOCATLIVE_TOKEN     the bridge and a key with the whmcs scope
 *   GEOCATLIVE_PASSWORD_PRODUCTS                 "<recreate product>,<command product>": products with a plan "basic"
 *                                                whose service "app" declares APP_PASSWORD as its credential (one
 *                                                applied by a recreate, one by a command) and writes the SHA-256 of
 *                                                the value it has to its log, and the value itself (masked by the bridge)
 *   GEOCATLIVE_PASSWORDS                         "<first>,<second>": the create's and the change's passwords; the
 *                                                Python side looks for them in the bridge's own logs and events
 *   GEOCATLIVE_SERVICE_ID_BASE                   optional, default 9000: this file uses base+1601..base+1605
 */

use PHPUnit\Framework\TestCase;
use WHMCS\Database\Capsule;
use WHMCS\Module\Server\Geocatlive\BridgeClient;

require_once __DIR__ . '/support/Polling.php';

final class ChangePasswordLiveTest extends TestCase
{
    /** @var string */
    private $url;
    /** @var string */
    private $token;
    /** @var string[] */
    private $products;
    /** @var string[] */
    private $passwords;

    protected function setUp(): void
    {
        $this->url = (string) getenv('GEOCATLIVE_BRIDGE_URL');
        $this->token = (string) getenv('GEOCATLIVE_TOKEN');
        $this->products = array_filter(explode(',', (string) getenv('GEOCATLIVE_PASSWORD_PRODUCTS')));
        $this->passwords = array_filter(explode(',', (string) getenv('GEOCATLIVE_PASSWORDS')));
        if ($this->url === '' || $this->token === '' || count($this->products) !== 2 || count($this->passwords) !== 2) {
            $this->markTestSkipped('no bridge to test against: set GEOCATLIVE_BRIDGE_URL, GEOCATLIVE_TOKEN, GEOCATLIVE_PASSWORD_PRODUCTS and GEOCATLIVE_PASSWORDS (tests/whmcs/test_php_module.py does)');
        }
        WhmcsRecorder::reset();
        Capsule::reset();
    }

    private static function serviceId(int $offset): int
    {
        return (int) (getenv('GEOCATLIVE_SERVICE_ID_BASE') ?: 9000) + $offset;
    }

    private function params(int $serviceId, string $product, string $password): array
    {
        return WhmcsParams::service($serviceId, $this->url, $this->token, [
            'configoption1' => $product, 'configoption2' => 'basic', 'configoption3' => '60',
            'username' => 'pw' . $serviceId, 'password' => $password,
        ]);
    }

    private function info(int $serviceId): array
    {
        return (new BridgeClient($this->url, $this->token))->get('/whmcs/v1/services/' . $serviceId);
    }

    /** The service "app"'s last log lines, as the bridge's logs route answers them (plain text). */
    private function logs(int $serviceId): string
    {
        $curl = curl_init($this->url . '/whmcs/v1/services/' . $serviceId . '/logs?service=app&tail=200');
        curl_setopt_array($curl, [CURLOPT_RETURNTRANSFER => true, CURLOPT_TIMEOUT => 30,
            CURLOPT_HTTPHEADER => ['Authorization: Bearer ' . $this->token]]);
        $text = (string) curl_exec($curl);
        $status = curl_getinfo($curl, CURLINFO_HTTP_CODE);
        curl_close($curl);
        $this->assertSame(200, $status, $text);
        return $text;
    }

    /** Until the service's log shows the SHA-256 of $password (what its service "app" has). */
    private function waitForApplied(int $serviceId, string $password): string
    {
        $digest = hash('sha256', $password);
        return Polling::eventually(function () use ($serviceId, $digest) {
            $text = $this->logs($serviceId);
            return strpos($text, $digest) !== false ? $text : null;
        }, 120, 'service #' . $serviceId . ' running with the expected password');
    }

    private function assertNowhere(array $passwords, string $text, string $where): void
    {
        foreach ($passwords as $password) {
            $this->assertStringNotContainsString($password, $text, 'a password in ' . $where);
        }
    }

    public static function applyModes(): array
    {
        return ['recreate' => [0, 1601], 'command' => [1, 1602]];
    }

    /**
     * CreateAccount sends WHMCS's password (the service starts with it); ChangePassword applies another one to the
     * running stack; neither value is in the module log, the bridge's answers or the service's log as read.
     *
     * @dataProvider applyModes
     */
    public function testThePasswordReachesTheRunningServiceAndNoLog(int $product, int $offset): void
    {
        list($first, $second) = $this->passwords;
        $id = self::serviceId($offset);
        $params = $this->params($id, $this->products[$product], $first);

        $this->assertSame('success', geocatlive_CreateAccount($params));
        Polling::eventually(function () use ($id) {
            return $this->info($id)['status'] === 'active' ? true : null;
        }, 120, 'service #' . $id . ' active');
        $logs = $this->waitForApplied($id, $first);
        $this->assertStringContainsString('started with ********', $logs, 'the bridge masks the value in service logs');

        // WHMCS stores the new password in the service, then calls ChangePassword with it.
        $changed = array_replace($params, ['password' => $second]);
        $this->assertSame('success', geocatlive_ChangePassword($changed));
        $logs = $this->waitForApplied($id, $second);
        $operation = Polling::eventually(function () use ($id) {
            $operation = $this->info($id)['recent_operations'][0] ?? null;
            return $operation !== null && $operation['kind'] === 'change_password' && $operation['state'] === 'succeeded' ? $operation : null;
        }, 60, 'the change_password of service #' . $id . ' succeeded');
        $this->assertSame(['variable' => 'APP_PASSWORD'], $operation['params']);

        // A repeat (the Module Queue's retry) changes nothing.
        $this->assertSame('success', geocatlive_ChangePassword($changed));

        $info = $this->info($id);
        $this->assertArrayNotHasKey('APP_PASSWORD', $info['secrets']);
        $this->assertNowhere([$first, $second], json_encode($info), 'the service info');
        $this->assertNowhere([$first, $second], $logs, 'the service logs');
        $this->assertNowhere([$first, $second], WhmcsRecorder::storedLog(), 'the module log');
        foreach (WhmcsRecorder::$moduleLog as $entry) {
            if (in_array($entry['action'], ['CreateAccount', 'ChangePassword'], true)) {
                $this->assertContains($entry['action'] === 'CreateAccount' ? $first : $second, $entry['replaceVars']);
            }
        }
        $this->assertSame('success', geocatlive_TerminateAccount($params));
    }

    public function testAProductWithoutACredentialAndABadPasswordAnswerClearly(): void
    {
        list($first) = $this->passwords;
        $plain = self::serviceId(1603);
        $paramsPlain = WhmcsParams::service($plain, $this->url, $this->token, ['configoption3' => '0', 'username' => 'pw' . $plain]);
        $this->assertSame('success', geocatlive_CreateAccount($paramsPlain));
        $refused = geocatlive_ChangePassword(array_replace($paramsPlain, ['password' => $first]));
        $this->assertStringStartsWith('GeoCat Live: ', $refused);
        $this->assertStringContainsString('product busybox-demo declares no customer password', $refused);

        $keyed = self::serviceId(1604);
        $params = $this->params($keyed, $this->products[1], $first);
        $params['configoption3'] = '0';
        $this->assertSame('success', geocatlive_CreateAccount($params));
        $bad = 'tiny!';
        $answer = geocatlive_ChangePassword(array_replace($params, ['password' => $bad]));
        $this->assertStringContainsString('the password must have 8 to 128 characters', $answer);
        $this->assertStringContainsString('nothing was changed', $answer);
        $answer = geocatlive_ChangePassword(array_replace($params, ['password' => 'has spaces in it']));
        $this->assertStringContainsString('the password may hold ASCII letters, digits and these symbols only', $answer);
        $this->assertStringNotContainsString('has spaces in it', $answer);
        $this->assertStringContainsString('GeoCat Live: WHMCS sent no password to set.', geocatlive_ChangePassword(array_replace($params, ['password' => ''])));

        $created = geocatlive_CreateAccount(array_replace($params, ['password' => 'x y']));  // a repeat: the stored one is kept
        $this->assertSame('success', $created);
        $this->assertNowhere([$first, $bad], WhmcsRecorder::storedLog(), 'the module log');
        $this->assertSame('success', geocatlive_TerminateAccount($paramsPlain));
        $this->assertSame('success', geocatlive_TerminateAccount($params));
    }
}
