<?php
/**
 * The module functions against the real bridge (gunicorn + worker + Docker), as
 * tests/whmcs/test_php_module.py starts it:
 *
 *   GEOCATLIVE_BRIDGE_URL       e.g. http://127.0.0.1:8000
 *   GEOCATLIVE_TOKEN            a key with the whmcs scope
 *   GEOCATLIVE_FAILING_PRODUCT  optional: a product with a plan "basic" whose deployment fails (for the cron hook test)
 *   GEOCATLIVE_SERVICE_ID_BASE  optional, default 9000: service ids are base+1, base+2, ...
 *
 * The bridge must offer the example product busybox-demo (plans small and large), and have a
 * backup store it can use (the test's own file:// store, as tests/support/live_service.py sets it).
 */

use PHPUnit\Framework\TestCase;
use WHMCS\Database\Capsule;
use WHMCS\Module\Server\Geocatlive\BridgeClient;

require_once __DIR__ . '/support/Polling.php';

final class LiveBridgeTest extends TestCase
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

    /** The bridge's service info, read directly (not through the module). */
    private function info(int $serviceId): array
    {
        return (new BridgeClient($this->url, $this->token))->get('/whmcs/v1/services/' . $serviceId);
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

    /** The newest operation the bridge lists for the service once it has finished: [kind, state, error]. */
    private function finishedOperation(int $serviceId, string $kind, int $seconds): array
    {
        return self::eventually(function () use ($serviceId, $kind) {
            $operation = $this->info($serviceId)['recent_operations'][0] ?? null;
            if ($operation === null || $operation['kind'] !== $kind || !in_array($operation['state'], ['succeeded', 'failed'], true)) {
                return null;
            }
            return [$operation['kind'], $operation['state'], (string) ($operation['error'] ?? '')];
        }, $seconds, 'a finished ' . $kind . ' of service #' . $serviceId);
    }

    /**
     * Issue 13 end to end: "Back up now", the client restore and its setting, and a staff restore of a
     * terminated service's final backup into the client's new service, through the module functions
     * as WHMCS calls them, against the real bridge, worker, Docker engine and backup store.
     */
    public function testBackupsAndRestoresThroughTheModuleFunctions(): void
    {
        $a = self::serviceId(11);
        $b = self::serviceId(12);
        $paramsA = $this->params($a, ['configoption3' => '60']);

        // 1. The service, active.
        $this->assertSame('success', geocatlive_CreateAccount($paramsA));
        self::eventually(function () use ($a) {
            return $this->info($a)['status'] === 'active' ? true : null;
        }, 120, 'service #' . $a . ' active');

        // 2. "Back up now" (the same function behind the client's and the admin's button).
        $this->assertContains('BackUpNow', geocatlive_ClientAreaCustomButtonArray());
        $this->assertContains('BackUpNow', geocatlive_AdminCustomButtonArray());
        $this->assertSame('success', geocatlive_BackUpNow($paramsA));
        $backup = self::eventually(function () use ($paramsA) {
            $backups = geocatlive_ClientArea($paramsA)['vars']['live']['backups'] ?? [];
            foreach ($backups['items'] ?? [] as $item) {
                if ($item['kind'] === 'on_demand' && $item['bytes'] > 0) {
                    return $item;
                }
            }
            return null;
        }, 120, 'an on_demand backup of service #' . $a . ' in the client area');
        $this->assertSame('On demand', $backup['kindLabel']);
        $this->assertMatchesRegularExpression('/^\d{8}T\d{6}Z-[0-9a-f]{8}$/', $backup['id']);

        // 3. The product does not let clients restore: refused, and nothing reaches the bridge.
        $before = array_column($this->info($a)['recent_operations'], 'id');
        $this->post(['modop' => 'custom', 'a' => 'RestoreBackup', 'backup_id' => $backup['id']]);
        $this->assertSame('GeoCat Live: restoring a backup from the client area is not enabled for this product;'
            . ' please contact support to have a backup restored.', geocatlive_RestoreBackup($paramsA));
        $after = $this->info($a)['recent_operations'];
        $this->assertSame($before, array_column($after, 'id'), 'no operation was recorded');
        $this->assertNotContains('restore', array_column($after, 'kind'));

        // 4. With "Clients may restore backups" ticked, the client restores it.
        $allowed = array_replace($paramsA, ['configoption4' => 'on']);
        $this->assertTrue(geocatlive_ClientArea($allowed)['vars']['live']['backups']['canRestore']);
        $this->assertSame('success', geocatlive_RestoreBackup($allowed));
        $this->assertSame(['restore', 'succeeded', ''], $this->finishedOperation($a, 'restore', 180));
        $this->assertSame('active', $this->info($a)['status']);

        // 5. Terminate A (its final backup is taken); B, a new service of the same client and product.
        $this->assertSame('success', geocatlive_TerminateAccount($paramsA));
        self::eventually(function () use ($a) {
            return $this->info($a)['status'] === 'terminated' ? true : null;
        }, 180, 'service #' . $a . ' terminated');
        $paramsB = $this->params($b, ['configoption3' => '60']);
        $this->assertSame('success', geocatlive_CreateAccount($paramsB));
        self::eventually(function () use ($b) {
            return $this->info($b)['status'] === 'active' ? true : null;
        }, 120, 'service #' . $b . ' active');

        $final = self::eventually(function () use ($b, $a) {
            $list = (new BridgeClient($this->url, $this->token))->get('/whmcs/v1/services/' . $b . '/backups');
            foreach ($list['restorable'] as $item) {
                if ((int) $item['service_id'] === $a && $item['kind'] === 'final') {
                    return $item;
                }
            }
            return null;
        }, 60, 'the final backup of service #' . $a . ' restorable into #' . $b);
        $this->assertGreaterThan(0, $final['size']);
        $tab = geocatlive_AdminServicesTabFields($paramsB);
        $this->assertStringContainsString('<code>' . $final['backup_id'] . '</code>', $tab['GeoCat Live restorable final backups']);
        $this->assertStringContainsString('<td>service #' . $a . ' (order ', $tab['GeoCat Live restorable final backups']);
        $this->assertStringContainsString('<option value="' . $final['backup_id'] . '">final backup of terminated service #' . $a . ', ',
            $tab['GeoCat Live restore']);

        // The staff restore: choose it in the tab, tick the box, "Save Changes".
        $this->post(['geocatlive_restore' => $final['backup_id'], 'geocatlive_restore_confirm' => '1']);
        $this->assertNull(geocatlive_AdminServicesTabFieldsSave($paramsB));
        $this->assertSame(['GeoCat Live: restore of backup ' . $final['backup_id'] . ' into service #' . $b . ' started;'
            . ' the bridge backs up the current data first. Follow it in "GeoCat Live operation".'], WhmcsRecorder::$activity);
        $this->assertSame(['restore', 'succeeded', ''], $this->finishedOperation($b, 'restore', 180));
        $this->assertSame('active', $this->info($b)['status']);

        $this->assertSame('success', geocatlive_TerminateAccount($paramsB));
        $stored = WhmcsRecorder::storedLog();
        $this->assertStringNotContainsString($this->token, $stored);
    }

    /** A form post, as PHP presents it to the module. */
    private function post(array $fields): void
    {
        $_POST = $fields;
        $_REQUEST = $fields;
    }

    public function testWholeLifecycleThroughTheModuleFunctions(): void
    {
        $id = self::serviceId(1);
        $params = $this->params($id, ['username' => 'river maps ' . $id, 'configoption3' => '60']);

        $this->assertSame('success', geocatlive_CreateAccount($params));
        $info = $this->info($id);
        $this->assertSame('active', $info['status']);
        $this->assertSame('busybox-demo', $info['product']);
        $this->assertSame('small', $info['plan']);
        $endpoint = $info['endpoints'][0]['url'];
        $this->assertSame('https://' . $info['hostname'], $endpoint);

        $area = geocatlive_ClientArea($params);
        $live = $area['vars']['live'];
        $this->assertTrue($live['available']);
        $this->assertSame('active', $live['status']);
        $this->assertFalse($live['running']);
        $this->assertSame($endpoint, $live['endpoints'][0]['url']);
        $this->assertSame(['DB_PASSWORD'], array_column($live['credentials'], 'name'));
        if (SmartyRenderer::available()) {
            $html = SmartyRenderer::render($area);
            $this->assertStringContainsString('<a href="' . $endpoint . '"', $html);
            $this->assertStringContainsString('>Active</span>', $html);
        }

        // A repeat (WHMCS Module Queue "Retry") converges: same order, one create.
        $this->assertSame('success', geocatlive_CreateAccount($params));
        $again = $this->info($id);
        $this->assertSame($info['id'], $again['id']);
        $this->assertSame(['create'], array_column($again['recent_operations'], 'kind'));

        $tab = geocatlive_AdminServicesTabFields($params);
        $this->assertStringStartsWith($info['instance'] . ' (' . $info['hostname'] . ')', $tab['GeoCat Live instance']);
        $this->assertSame('Active: busybox-demo, plan small', $tab['GeoCat Live status']);
        $this->assertSame($info['revision'], $tab['GeoCat Live revision']);
        $this->assertStringContainsString('href="' . $endpoint . '"', $tab['GeoCat Live endpoints']);
        $this->assertStringContainsString('<td>create</td><td>succeeded</td>', $tab['GeoCat Live last operations']);

        $suspend = $params + ['suspendreason' => 'Overdue on Payment'];
        $this->assertSame('success', geocatlive_SuspendAccount($suspend));
        $this->assertSame('suspended', $this->info($id)['status']);
        $this->assertSame('success', geocatlive_SuspendAccount($suspend), 'already suspended is a success');

        $this->assertSame('success', geocatlive_UnsuspendAccount($params));
        $this->assertSame('active', $this->info($id)['status']);

        $upgrade = array_replace($params, ['configoptions' => ['Plan' => 'large']]);
        $this->assertSame('success', geocatlive_ChangePackage($upgrade));
        $changed = $this->info($id);
        $this->assertSame('large', $changed['plan']);
        $this->assertSame('active', $changed['status']);

        $this->assertSame('success', geocatlive_Restart($params));
        $this->assertSame(['restart', 'succeeded'], [$this->info($id)['operation']['kind'], $this->info($id)['operation']['state']]);
        $this->assertSame('success', geocatlive_Redeploy($params));

        // The bridge answers what its worker's usage sampler measured (LIVE_USAGE_DISK_SECONDS): wait for a measure.
        self::eventually(function () use ($id) {
            $answer = (new BridgeClient($this->url, $this->token))->get('/whmcs/v1/usage?service_id=' . $id);
            return ($answer['services'][0]['disk_mb'] ?? null) === null ? null : true;
        }, 60, 'the disk of service ' . $id . ' measured by the bridge');
        Capsule::$tables['tblhosting'] = [['id' => $id, 'server' => WhmcsParams::SERVER_ID, 'diskusage' => -1, 'disklimit' => 5, 'bwusage' => 3, 'bwlimit' => 3, 'lastupdate' => '0000-00-00 00:00:00']];
        $server = WhmcsParams::server($this->url, $this->token);
        $this->assertSame('success', geocatlive_UsageUpdate($server));
        $updates = array_values(array_filter(Capsule::calls('tblhosting', 'update'), function ($call) use ($id) {
            return $call['wheres'] === [['id', '=', $id], ['server', '=', WhmcsParams::SERVER_ID]];
        }));
        $this->assertCount(1, $updates);
        $row = Capsule::$tables['tblhosting'][0];
        $this->assertIsInt($row['diskusage']);
        $this->assertGreaterThanOrEqual(0, $row['diskusage']);
        $this->assertSame([0, 0, 0], [$row['disklimit'], $row['bwusage'], $row['bwlimit']]);
        $this->assertNotSame('0000-00-00 00:00:00', $row['lastupdate']);

        $this->assertSame('Single sign-on is not supported by GeoCat Live products yet: log in at ' . $endpoint . ' with the credentials shown in the client area.',
            geocatlive_ServiceSingleSignOn($params)['errorMsg']);

        $this->assertSame('success', geocatlive_TerminateAccount($params));
        $this->assertSame('terminated', $this->info($id)['status']);
        $this->assertSame('success', geocatlive_TerminateAccount($params), 'terminating twice is a success');

        // Every call was logged, and nothing secret is stored in the log.
        $actions = array_unique(array_column(WhmcsRecorder::$moduleLog, 'action'));
        foreach (['CreateAccount', 'ClientArea', 'AdminServicesTabFields', 'SuspendAccount', 'UnsuspendAccount', 'ChangePackage', 'Restart',
                     'Redeploy', 'UsageUpdate', 'ServiceSingleSignOn', 'TerminateAccount'] as $action) {
            $this->assertContains($action, $actions);
        }
        $stored = WhmcsRecorder::storedLog();
        $this->assertStringNotContainsString($this->token, $stored);
        $this->assertStringNotContainsString(WhmcsParams::SERVICE_PASSWORD, $stored);
        $this->assertNotEmpty($info['secrets']['DB_PASSWORD']);
        $this->assertStringNotContainsString($info['secrets']['DB_PASSWORD'], $stored);
    }

    public function testTestConnectionWorksAndWarnsAboutPlainHttp(): void
    {
        $result = geocatlive_TestConnection(WhmcsParams::server($this->url, $this->token));
        if (strncmp($this->url, 'https://', 8) === 0) {
            $this->assertSame(['success' => true, 'error' => ''], $result);
            return;
        }
        if (BridgeClient::isLoopbackHost((string) parse_url($this->url, PHP_URL_HOST))) {
            // Issue 9, item 8: the bridge on the WHMCS host over plain http passes, with a remark in the module log.
            $this->assertSame(['success' => true, 'error' => ''], $result);
            $log = WhmcsRecorder::logOf('TestConnection');
            $this->assertStringContainsString('over plain http to a loopback address', end($log)['response']);
            $this->assertStringNotContainsString($this->token, WhmcsRecorder::storedLog());
            return;
        }
        $this->assertFalse($result['success']);
        $this->assertStringStartsWith('GeoCat Live warning: connected to the bridge at ' . rtrim($this->url, '/') . ' with key "', $result['error']);
        $this->assertStringContainsString('over plain http', $result['error']);
    }

    public function testTheLoadersListTheBridgesProductsAndPlans(): void
    {
        $server = WhmcsParams::server($this->url, $this->token);
        $this->assertSame('Busybox demo stack (busybox-demo)', geocatlive_LoadProducts($server)['busybox-demo']);
        $this->assertSame(['large' => 'large (busybox-demo)', 'small' => 'small (busybox-demo)'],
            geocatlive_LoadPlans($server + ['configoption1' => 'busybox-demo']));
    }

    public function testAWrongTokenIsRejected(): void
    {
        $params = WhmcsParams::service(self::serviceId(2), $this->url, 'live_wrongkey_' . str_repeat('x', 43));
        $result = geocatlive_CreateAccount($params);
        $this->assertSame('GeoCat Live: the bridge at ' . rtrim($this->url, '/') . ' rejected the API key (HTTP 401):'
            . ' put a valid key with the whmcs scope in the server\'s Access Hash (or Password).', $result);
        $this->assertFalse(geocatlive_TestConnection($params)['success']);
        $this->assertStringContainsString('rejected the API key', geocatlive_TestConnection($params)['error']);
    }

    public function testAnUnknownProductOrPlanIsNamedWithTheValidChoices(): void
    {
        // The bridge answers 422 naming the value and the valid choices (a 404 would read as "not the bridge").
        $result = geocatlive_CreateAccount($this->params(self::serviceId(3), ['configoption1' => 'no-such-product']));
        $this->assertStringStartsWith('GeoCat Live: ', $result);
        $this->assertStringContainsString("unknown product 'no-such-product'", $result);
        $this->assertStringContainsString('busybox-demo', $result, 'the valid products');
        $this->assertStringEndsWith('(HTTP 422).', $result);

        // Issue 9, item 10: the configurable option Plan is "Gold".
        $result = geocatlive_CreateAccount($this->params(self::serviceId(4), ['configoptions' => ['Plan' => 'Gold']]));
        $this->assertSame("GeoCat Live: product busybox-demo has no plan 'Gold' (plans: large, small) (HTTP 422).", $result);
    }

    public function testPlanAndProductAreMatchedWithoutRegardToCaseAndSpaces(): void
    {
        $id = self::serviceId(6);
        $params = $this->params($id, ['configoption1' => ' Busybox-Demo ', 'configoption3' => '0', 'configoptions' => ['Plan' => " LARGE \t"]]);
        $this->assertSame('success', geocatlive_CreateAccount($params));
        $info = $this->info($id);
        $this->assertSame(['busybox-demo', 'large'], [$info['product'], $info['plan']]);
        $this->assertSame('success', geocatlive_TerminateAccount($params));
    }

    public function testAnIpAddressIsNoDomain(): void
    {
        // Issue 9, item 10: the domain is 192.0.2.10. The module sends it; the bridge refuses it and says why.
        $id = self::serviceId(7);
        $result = geocatlive_CreateAccount($this->params($id, ['domain' => '192.0.2.10']));
        $this->assertStringStartsWith('GeoCat Live: ', $result);
        $this->assertStringContainsString("'192.0.2.10'", $result);
        $this->assertStringContainsString('IP address', $result);
        $this->assertStringEndsWith('(HTTP 422).', $result);
        $this->assertStringContainsString('This service is not set up yet.', geocatlive_ClientArea($this->params($id))['vars']['live']['notice'],
            'nothing was created');
    }

    public function testChangePackageMovesTheOrderToTheServicesDomain(): void
    {
        $id = self::serviceId(8);
        $params = $this->params($id, ['configoption3' => '60']);
        $this->assertSame('success', geocatlive_CreateAccount($params));
        $domain = 'maps-' . $id . '.example.org';
        $this->assertSame('success', geocatlive_ChangePackage(array_replace($params, ['domain' => ' ' . $domain . ' '])));
        $this->assertSame($domain, $this->info($id)['hostname']);
        $this->assertSame('success', geocatlive_TerminateAccount($params));
    }

    public function testNoOrderYetOnlyForAServiceTheBridgeDoesNotKnow(): void
    {
        $params = $this->params(self::serviceId(9));
        $this->assertSame('This service is not set up yet.', geocatlive_ClientArea($params)['vars']['live']['notice']);
        $this->assertSame(['GeoCat Live' => 'The bridge has no order for this service yet (the module&#039;s Create has not reached it).'],
            geocatlive_AdminServicesTabFields($params));
    }

    public function testAWrongPathPrefixIsNotTheBridge(): void
    {
        // Issue 9, item 10: serverhostname 127.0.0.1/live, a path the bridge does not have.
        $params = WhmcsParams::service(self::serviceId(10), rtrim($this->url, '/') . '/live', $this->token);
        $url = rtrim($this->url, '/') . '/live/whmcs/v1/services/' . self::serviceId(10);
        $tab = html_entity_decode(geocatlive_AdminServicesTabFields($params)['GeoCat Live'], ENT_QUOTES);
        $this->assertStringStartsWith('GeoCat Live: ' . $url . ' is not the GeoCat Live Bridge\'s WHMCS API (GET got HTTP 404', $tab);
        $this->assertStringContainsString('check the server\'s Hostname (with the bridge\'s path prefix, if it has one), Port and "Secure" tick', $tab);
        $this->assertSame('The service details are not available right now; please try again in a few minutes.',
            geocatlive_ClientArea($params)['vars']['live']['notice']);
        $this->assertStringStartsWith('GeoCat Live: ' . $url . '/create is not the GeoCat Live Bridge\'s WHMCS API', geocatlive_CreateAccount($params));
        $this->assertStringContainsString('/live/whmcs/v1/test-connection is not the', geocatlive_TestConnection($params)['error']);
    }

    public function testAFailureAfterTheCallReturnedReachesTheActivityLog(): void
    {
        $product = (string) getenv('GEOCATLIVE_FAILING_PRODUCT');
        if ($product === '') {
            $this->markTestSkipped('set GEOCATLIVE_FAILING_PRODUCT to a product whose deployment fails');
        }
        $id = self::serviceId(5);
        // wait 0: the bridge accepts the job and WHMCS gets "success" at once ...
        $params = $this->params($id, ['configoption1' => $product, 'configoption2' => 'basic', 'configoption3' => '0']);
        $this->assertSame('success', geocatlive_CreateAccount($params));
        $this->assertContains($this->info($id)['status'], ['pending', 'failed']);
        // ... and the worker fails it afterwards.
        $deadline = time() + 120;
        do {
            usleep(500000);
            $info = $this->info($id);
        } while ($info['status'] !== 'failed' && time() < $deadline);
        $this->assertSame('failed', $info['status']);
        $this->assertNotEmpty($info['last_error']);

        $this->assertSame('Failed', geocatlive_ClientArea($params)['vars']['live']['statusLabel']);
        $this->assertSame($info['last_error'], geocatlive_ClientArea($params)['vars']['live']['lastError']);

        $parts = parse_url($this->url);
        Capsule::$tables['tblservers'] = [[
            'id' => WhmcsParams::SERVER_ID, 'name' => 'Live', 'type' => 'geocatlive', 'disabled' => 0,
            'hostname' => $parts['host'], 'ipaddress' => '', 'port' => (string) ($parts['port'] ?? ''),
            'secure' => ($parts['scheme'] ?? '') === 'https' ? 'on' : '', 'accesshash' => $this->token, 'password' => '',
        ]];
        WhmcsRecorder::runHook('DailyCronJob', []);
        $expected = 'GeoCat Live: create of service #' . $id . ' failed: ' . $info['last_error'];
        $lines = array_values(array_filter(WhmcsRecorder::$activity, function ($line) use ($expected) {
            return strpos($line, $expected) === 0;
        }));
        $this->assertCount(1, $lines, implode("\n", WhmcsRecorder::$activity));
    }
}
