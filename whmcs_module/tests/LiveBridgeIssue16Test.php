<?php
/**
 * Issue 16's entry points against the real bridge (gunicorn + worker + Docker), as tests/whmcs/test_php_module.py
 * starts it (GEOCATLIVE_BRIDGE_URL, GEOCATLIVE_TOKEN, GEOCATLIVE_SERVICE_ID_BASE), with the orders it seeded for
 * Server Sync (GEOCATLIVE_SEEDED_FIRST, GEOCATLIVE_SEEDED_COUNT: tests/support/accounts_seed.py; suspended,
 * terminated, pending and failed in turn, instance sync<n>).
 */

use PHPUnit\Framework\TestCase;
use WHMCS\Database\Capsule;
use WHMCS\Module\Server\Geocatlive\BridgeClient;
use WHMCS\Service\Status;

final class LiveBridgeIssue16Test extends TestCase
{
    use LiveBridgeCase;

    public function testListAccountsWalksEveryPageOfTheBridgesOrders(): void
    {
        $first = (int) getenv('GEOCATLIVE_SEEDED_FIRST');
        $count = (int) getenv('GEOCATLIVE_SEEDED_COUNT');
        if ($first < 1 || $count < 1) {
            $this->markTestSkipped('no seeded orders: set GEOCATLIVE_SEEDED_FIRST and GEOCATLIVE_SEEDED_COUNT (tests/whmcs/test_php_module.py does)');
        }
        $server = WhmcsParams::server($this->url, $this->token);

        // Small pages: the module follows `next` until it is null.
        $client = BridgeClient::fromServerParams($server, BridgeClient::moduleLogger('ListAccounts'));
        $paged = geocatlive_listAccountsWith($client, 40);
        $requests = array_filter(array_column(WhmcsRecorder::logOf('ListAccounts'), 'request'), function ($request) {
            return strpos($request, 'GET ' . rtrim($this->url, '/') . '/whmcs/v1/accounts?after=') === 0;
        });
        $this->assertTrue($paged['success']);
        $this->assertGreaterThanOrEqual((int) ceil($count / 40), count($requests), 'one request per page');
        $this->assertSame(count($paged['accounts']), count(array_unique(array_column($paged['accounts'], 'service_id'))), 'each order once');

        // WHMCS's own call (pages of 500) lists the same.
        $whole = geocatlive_ListAccounts($server);
        $this->assertSame($paged, $whole);

        $seeded = array_values(array_filter($whole['accounts'], function ($account) use ($first, $count) {
            return $account['service_id'] >= $first && $account['service_id'] < $first + $count;
        }));
        $this->assertCount($count, $seeded);
        $this->assertSame(range($first, $first + $count - 1), array_column($seeded, 'service_id'), 'in service id order');
        $statuses = [Status::SUSPENDED, Status::TERMINATED, Status::PENDING, Status::PENDING]; // suspended, terminated, pending, failed
        foreach ($seeded as $n => $account) {
            $this->assertSame(['email', 'username', 'domain', 'uniqueIdentifier', 'product', 'primaryip', 'created', 'status', 'service_id'],
                array_keys($account));
            $this->assertSame('sync' . $n, $account['username']);
            $this->assertSame($account['username'], $account['uniqueIdentifier']);
            $this->assertStringStartsWith('sync' . $n . '.', $account['domain']);
            $this->assertSame(['sync@example.org', 'busybox-demo', ''], [$account['email'], $account['product'], $account['primaryip']]);
            $this->assertSame($statuses[$n % 4], $account['status']);
            $this->assertMatchesRegularExpression('/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/', $account['created']);
        }
        $this->assertGreaterThan(strtotime($seeded[1]['created']), strtotime($seeded[0]['created']), 'each seeded order a minute older');

        // A wrong key: a clear error, no accounts.
        $wrong = geocatlive_ListAccounts(WhmcsParams::server($this->url, 'live_wrongkey_' . str_repeat('x', 43)));
        $this->assertSame(['success' => false, 'accounts' => [], 'error' => 'GeoCat Live: the bridge at ' . rtrim($this->url, '/')
            . ' rejected the API key (HTTP 401): put a valid key with the whmcs scope in the server\'s Access Hash (or Password).'], $wrong);
        $this->assertStringNotContainsString($this->token, WhmcsRecorder::storedLog());
    }

    /**
     * One active service: its usage through the MetricProvider equals what the bridge sampled; the client's Logs page
     * lists its services; suspended, its client actions are refused before anything reaches the bridge.
     */
    public function testMetricsLogsAndStatusChecksOfARealService(): void
    {
        $id = self::serviceId(20);
        $params = $this->params($id, ['username' => 'metered' . $id, 'configoption3' => '60']);
        $this->assertSame('success', geocatlive_CreateAccount($params));
        $active = array_replace($params, ['status' => 'Active']);
        $this->assertSame('active', $this->bridge()->get('/whmcs/v1/services/' . $id)['status']);
        $this->assertSame('success', geocatlive_BackUpNow($active));

        // Usage Billing: WHMCS's tenant of the service is its username (MetaData's ListAccountsUniqueIdentifierField).
        Capsule::$tables['tblhosting'] = [
            ['id' => $id, 'server' => WhmcsParams::SERVER_ID, 'username' => 'metered' . $id],
            ['id' => $id + 1, 'server' => WhmcsParams::SERVER_ID + 1, 'username' => 'elsewhere'],
        ];
        $sampled = function () use ($id) {
            $row = $this->bridge()->get('/whmcs/v1/usage', ['service_id' => $id])['services'][0] ?? null;
            return $row !== null && $row['disk_mb'] !== null && $row['sampled_at'] !== null && $row['backup_mb'] > 0 ? $row : null;
        };
        self::eventually($sampled, 120, 'service #' . $id . ' sampled (disk, memory) with a stored backup');
        $provider = geocatlive_MetricProvider(WhmcsParams::server($this->url, $this->token));
        list($row, $usage, $tenant) = self::eventually(function () use ($sampled, $provider, $id) {
            $before = $sampled();
            $usage = $provider->usage();
            $tenant = $provider->tenantUsage('metered' . $id);
            $after = $sampled();
            $figures = ['disk_mb' => 0, 'memory_mb' => 0, 'memory_limit_mb' => 0, 'backup_mb' => 0];
            // The same figures before and after: no new sample changed them meanwhile.
            return $before !== null && $after !== null && array_intersect_key($before, $figures) === array_intersect_key($after, $figures)
                ? [$before, $usage, $tenant] : null;
        }, 60, 'two equal samples around the provider\'s reads');
        $this->assertSame(['metered' . $id], array_keys($usage), 'only this server\'s services, keyed by their tenant');
        $values = function (array $metrics) {
            return array_map(function ($metric) {
                return $metric->usage() === null ? null : $metric->usage()->value();
            }, $metrics);
        };
        $expected = ['disk' => $row['disk_mb'] / 1024, 'memory' => ($row['memory_limit_mb'] ?? $row['memory_mb']) / 1024,
            'backups' => $row['backup_mb'] / 1024];
        $this->assertSame($expected, $values($usage['metered' . $id]));
        $this->assertSame($expected, $values($tenant));
        // Memory allocated: the sum of the services' limits, or (a service without one, as here on one engine) the memory used.
        $this->assertGreaterThan(0, $expected['memory']);
        $this->assertGreaterThan(0, $expected['backups'], 'the on-demand backup is stored');
        $this->assertSame([], $provider->tenantUsage('elsewhere'), 'a service of another server');

        // The client's Logs page: one section per service of the order.
        $page = geocatlive_Logs($active);
        $logs = $page['vars']['logs'];
        $this->assertTrue($logs['available'], $logs['notice']);
        $header = $this->bridge()->getText('/whmcs/v1/services/' . $id . '/logs', ['tail' => 0])['headers']['x-live-order-services'];
        $this->assertSame(explode(',', $header), array_column($logs['services'], 'name'), 'every service of the order, as the bridge names them');
        $this->assertContains('db', array_column($logs['services'], 'name'));
        foreach ($logs['services'] as $service) {
            $this->assertLessThanOrEqual(100, count($service['lines']));
        }
        if (SmartyRenderer::available()) {
            $this->assertStringContainsString('<h4 class="geocatlive-logs-service">db</h4>', SmartyRenderer::render($page));
        }

        // Suspended: the client's Logs and restore are refused before anything is sent.
        $this->assertSame('success', geocatlive_SuspendAccount($params + ['suspendreason' => 'Overdue on Payment']));
        $suspended = array_replace($params, ['status' => 'Suspended', 'configoption4' => 'on']);
        $before = array_column($this->bridge()->get('/whmcs/v1/services/' . $id)['recent_operations'], 'id');
        WhmcsRecorder::reset();
        $this->assertSame('this service is suspended, and its logs can be shown only while it is active. Please contact support if you need help.',
            geocatlive_Logs($suspended)['vars']['logs']['notice']);
        $_POST = ['backup_id' => '20261201T000000Z-0a1b2c3d'];
        $this->assertStringStartsWith('GeoCat Live: this service is suspended, and it can be restored from a backup only while it is active.',
            geocatlive_RestoreBackup($suspended));
        $this->assertSame(['(not sent)', '(not sent)'], array_column(WhmcsRecorder::$moduleLog, 'request'));
        $this->assertSame($before, array_column($this->bridge()->get('/whmcs/v1/services/' . $id)['recent_operations'], 'id'), 'no operation');

        // An unknown service: no order yet.
        $this->assertSame('This service is not set up yet.', geocatlive_Logs($this->params(self::serviceId(21), ['status' => 'Active']))['vars']['logs']['notice']);

        $this->assertSame('success', geocatlive_TerminateAccount($params));
        $this->assertStringNotContainsString($this->token, WhmcsRecorder::storedLog());
    }

    public function testTheAdminTabShowsRuntimeAndDrift(): void
    {
        $id = self::serviceId(22);
        $params = $this->params($id, ['configoption3' => '60']);
        $this->assertSame('success', geocatlive_CreateAccount($params));
        $tab = self::eventually(function () use ($params) {
            $tab = geocatlive_AdminServicesTabFields($params);
            return strpos($tab['GeoCat Live runtime'], 'running') === 0 ? $tab : null;
        }, 60, 'the runtime of service #' . $id . ' running (the worker\'s mirror)');
        $this->assertMatchesRegularExpression('/^running \(checked \d{4}-\d\d-\d\d \d\d:\d\d UTC\): /', $tab['GeoCat Live runtime']);
        $this->assertStringContainsString('db running (healthy)', $tab['GeoCat Live runtime']);
        $this->assertContains($tab['GeoCat Live drift'], ['ok: what the last deploy made runs', 'not checked yet (no deploy recorded what should run)']);
        $this->assertNull(geocatlive_AdminServicesTabFieldsSave($params), 'the tab stays read-only apart from the restore');
        $this->assertSame([], WhmcsRecorder::$activity);
        $this->assertSame('success', geocatlive_Renew($params));
        $this->assertSame('success', geocatlive_TerminateAccount($params));
    }
}
