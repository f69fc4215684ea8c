<?php
/**
 * Issue 16's entry points without a real bridge: Server Sync (ListAccounts), Usage Billing (MetricProvider and its
 * WHMCS contract), Renew, the client's Logs page (and its template), the status checks of client actions, the
 * admin tab's runtime and drift words, and the daily report's failing orders. Against PHP's built-in server with
 * fixtures/issue16_bridge.php (misbehaving routes) and an address where nothing listens (the bridge down).
 */

use PHPUnit\Framework\TestCase;
use WHMCS\Database\Capsule;
use WHMCS\Module\Server\Geocatlive\BridgeClient;
use WHMCS\Module\Server\Geocatlive\FailureReport;
use WHMCS\Module\Server\Geocatlive\MetricsProvider;
use WHMCS\UsageBilling\Contracts\Metrics\MetricInterface;
use WHMCS\UsageBilling\Contracts\Metrics\ProviderInterface;
use WHMCS\UsageBilling\Contracts\Metrics\UsageStubInterface;
use WHMCS\UsageBilling\Metrics\Units\GigaBytes;

final class Issue16WireTest extends TestCase
{
    const TOKEN = 'live_stubstub_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG';

    /** @var StubServer */
    private static $stub;
    /** @var string a loopback address where nothing listens */
    private static $down;

    public static function setUpBeforeClass(): void
    {
        self::$stub = StubServer::router('issue16_bridge.php');
        self::$down = 'http://127.0.0.1:' . StubServer::freePort();
    }

    public static function tearDownAfterClass(): void
    {
        self::$stub->stop();
    }

    protected function setUp(): void
    {
        WhmcsRecorder::reset();
        Capsule::reset();
        $_GET = $_POST = $_REQUEST = [];
    }

    private function params(string $url, array $overrides = []): array
    {
        return WhmcsParams::service(4242, $url, self::TOKEN, array_replace(['status' => 'Active'], $overrides));
    }

    // -- Server Sync --------------------------------------------------------------------------------------------
    public function testMetaDataNamesTheServerSyncFields(): void
    {
        $meta = geocatlive_MetaData();
        $this->assertSame('username', $meta['ListAccountsUniqueIdentifierField']);
        $this->assertSame('Username', $meta['ListAccountsUniqueIdentifierDisplayName']);
        $this->assertSame('configoption1', $meta['ListAccountsProductField']);
    }

    public function testListAccountsWithTheBridgeDownFailsClearly(): void
    {
        $result = geocatlive_ListAccounts(WhmcsParams::server(self::$down, self::TOKEN));
        $this->assertSame(false, $result['success']);
        $this->assertSame([], $result['accounts']);
        $this->assertStringStartsWith('GeoCat Live: the bridge cannot be reached at ' . self::$down, $result['error']);
        $this->assertStringNotContainsString(self::TOKEN, WhmcsRecorder::storedLog());
    }

    public function testListAccountsRefusesACursorThatDoesNotAdvance(): void
    {
        $result = geocatlive_ListAccounts(WhmcsParams::server(self::$stub->url . '/stuck', self::TOKEN));
        $this->assertSame(['success' => false, 'accounts' => [],
            'error' => 'GeoCat Live: the bridge\'s accounts answer did not advance (next 0 after 0); the list was not taken.'], $result);
    }

    public function testListAccountsIdentifiesAnOrderByItsServicesWhmcsUsernameNotItsDerivedInstance(): void
    {
        // The bridge derives the instance from the username: "John_Doe" taken once already is "john-doe-2"; a service
        // without a username is "order-<id>". WHMCS matches uniqueIdentifier against the service's username.
        Capsule::$tables['tblhosting'] = [
            ['id' => 7, 'server' => WhmcsParams::SERVER_ID, 'username' => 'John_Doe'],
            ['id' => 8, 'server' => WhmcsParams::SERVER_ID, 'username' => ''],
            ['id' => 9, 'server' => WhmcsParams::SERVER_ID + 1, 'username' => 'elsewhere'],
        ];
        $result = geocatlive_ListAccounts(WhmcsParams::server(self::$stub->url . '/derived', self::TOKEN));
        $this->assertTrue($result['success']);
        $this->assertSame([7 => 'John_Doe', 8 => 'order-8', 9 => 'gone'],
            array_column($result['accounts'], 'uniqueIdentifier', 'service_id'));
        $this->assertSame(['john-doe-2', 'order-8', 'gone'], array_column($result['accounts'], 'username'), 'the instance, as the bridge has it');
    }

    public function testListAccountsRefusesAnEmptyPageThatIsNotTheLast(): void
    {
        $this->assertSame(['success' => false, 'accounts' => [],
            'error' => 'GeoCat Live: the bridge\'s accounts answer is an empty page with a next page (after 0); the list was not taken.'],
            geocatlive_ListAccounts(WhmcsParams::server(self::$stub->url . '/creeping', self::TOKEN)));
    }

    public function testListAccountsFromABridgeWithoutTheRouteSaysSo(): void
    {
        $this->assertStringContainsString('is not the GeoCat Live Bridge\'s WHMCS API',
            geocatlive_ListAccounts(WhmcsParams::server(self::$stub->url . '/old', self::TOKEN))['error']);
        $this->assertSame('GeoCat Live: the bridge\'s accounts answer is not a page (no items or next): update the bridge.',
            geocatlive_ListAccounts(WhmcsParams::server(self::$stub->url . '/not-a-page', self::TOKEN))['error']);
        $this->assertStringContainsString('no hostname or IP address', geocatlive_ListAccounts([])['error']);
    }

    // -- Usage Billing ------------------------------------------------------------------------------------------
    public function testTheMetricProviderFulfilsWhmcsContract(): void
    {
        $provider = geocatlive_MetricProvider(WhmcsParams::server(self::$down, self::TOKEN));
        $this->assertInstanceOf(ProviderInterface::class, $provider);
        $metrics = $provider->metrics();
        $this->assertSame(['disk', 'memory', 'backups'], array_keys($metrics));
        foreach ($metrics as $name => $metric) {
            $this->assertInstanceOf(MetricInterface::class, $metric);
            $this->assertSame($name, $metric->systemName());
            $this->assertSame(MetricInterface::TYPE_SNAPSHOT, $metric->type());
            $this->assertInstanceOf(GigaBytes::class, $metric->units());
            $this->assertInstanceOf(UsageStubInterface::class, $metric->usage(), 'no usage: WHMCS\'s NoUsage');
        }
        $this->assertSame(['Disk space', 'Memory allocated', 'Backup storage'], array_values(array_map(function ($metric) {
            return $metric->displayName();
        }, $metrics)));
    }

    public function testWithTheBridgeDownTheProviderAnswersNoUsageAndLogsWhy(): void
    {
        Capsule::$tables['tblhosting'] = [['id' => 4242, 'server' => WhmcsParams::SERVER_ID, 'username' => 'acme']];
        $provider = geocatlive_MetricProvider(WhmcsParams::server(self::$down, self::TOKEN));
        $this->assertSame([], $provider->usage());
        $this->assertSame([], $provider->tenantUsage('acme'));
        $log = WhmcsRecorder::logOf('MetricProvider usage');
        $this->assertCount(1, $log);
        $this->assertStringStartsWith('GeoCat Live: the bridge cannot be reached', $log[0]['response']);
        $this->assertStringNotContainsString(self::TOKEN, WhmcsRecorder::storedLog());
        $this->assertSame([], geocatlive_MetricProvider([])->usage(), 'no server id: no usage');
        $this->assertSame([], geocatlive_MetricProvider(WhmcsParams::server(self::$down, self::TOKEN))->tenantUsage('nobody'),
            'a tenant no service of the server has: nothing is asked');
    }

    public function testAFigureNotMeasuredYetIsLeftOutAndEachUsageIsDatedWhenTheBridgeMeasuredIt(): void
    {
        // WHMCS stores a metric without usage (its NoUsage) as 0, over the service's last snapshot: leave it out instead.
        Capsule::$tables['tblhosting'] = [
            ['id' => 4242, 'server' => WhmcsParams::SERVER_ID, 'username' => 'acme'],
            ['id' => 4243, 'server' => WhmcsParams::SERVER_ID, 'username' => 'newcomer'],
        ];
        $provider = geocatlive_MetricProvider(WhmcsParams::server(self::$stub->url . '/usage', self::TOKEN));
        $usage = $provider->usage();
        $this->assertSame(['acme', 'newcomer'], array_keys($usage));
        $this->assertSame(['backups'], array_keys($usage['newcomer']), 'disk and memory not measured yet: left out');
        $this->assertSame(0.0, $usage['newcomer']['backups']->usage()->value(), 'no backup stored: 0 GB, measured now');
        $acme = $usage['acme'];
        $this->assertSame(['disk' => 0.5, 'memory' => 2.0, 'backups' => 1.5], array_map(function ($metric) {
            return $metric->usage()->value();
        }, $acme));
        $this->assertSame(strtotime('2026-12-01T09:00:00Z'), $acme['disk']->usage()->collectedAt(), 'the disk sample\'s time');
        $this->assertSame(strtotime('2026-12-01T10:00:00Z'), $acme['memory']->usage()->collectedAt(), 'the memory sample\'s time');
        $this->assertSame(['backups'], array_keys($provider->tenantUsage('newcomer')));
        $this->assertSame(['disk', 'memory', 'backups'], array_keys($provider->tenantUsage('acme')));
        foreach (array_merge($acme, $usage['newcomer']) as $metric) {
            $this->assertNotInstanceOf(UsageStubInterface::class, $metric->usage());
        }
    }

    public function testMemoryAllocatedIsTheSumOfLimitsOrTheMemoryUsedWhenUnlimited(): void
    {
        $limited = ['disk_mb' => 512.0, 'memory_mb' => 100.0, 'memory_limit_mb' => 2048.0, 'backup_mb' => 1536.0];
        $this->assertSame(['disk' => 0.5, 'memory' => 2.0, 'backups' => 1.5], MetricsProvider::figures($limited));
        $unlimited = ['disk_mb' => null, 'memory_mb' => 256.0, 'memory_limit_mb' => null, 'backup_mb' => 0.0];
        $this->assertSame(['disk' => null, 'memory' => 0.25, 'backups' => 0.0], MetricsProvider::figures($unlimited));
        $this->assertSame(['disk' => null, 'memory' => null, 'backups' => null], MetricsProvider::figures([]), 'not measured yet');
    }

    // -- Renew --------------------------------------------------------------------------------------------------
    public function testRenewHasNothingToDoAndSaysSo(): void
    {
        $this->assertSame('success', geocatlive_Renew($this->params(self::$down)));
        $this->assertSame('success', geocatlive_Renew([]));
        $log = WhmcsRecorder::logOf('Renew');
        $this->assertSame('(not sent)', $log[0]['request']);
        $this->assertSame('GeoCat Live: nothing to do on renewal of service #4242: the service keeps running; nothing was sent to the bridge.',
            $log[0]['response']);
    }

    // -- the client's Logs page ---------------------------------------------------------------------------------
    public function testTheLogsPageShowsTheLastLinesOfEachServiceEscaped(): void
    {
        $page = geocatlive_Logs($this->params(self::$stub->url . '/logs'));
        $this->assertSame('templates/logs', $page['templatefile']);
        $this->assertSame(['clientarea.php?action=productdetails&id=4242&modop=custom&a=Logs' => 'Logs'], $page['breadcrumb']);
        $logs = $page['vars']['logs'];
        $this->assertTrue($logs['available']);
        $this->assertSame(['web', 'db'], array_column($logs['services'], 'name'));
        foreach ($logs['services'] as $service) {
            $this->assertCount(100, $service['lines'], 'the last 100 lines');
            $this->assertSame($service['name'] . ' line 52', $service['lines'][0]);
            $this->assertSame($service['name'] . ': <script>alert("x")</script> & done', end($service['lines']));
        }
        if (!SmartyRenderer::available()) {
            $this->markTestIncomplete('smarty4 is not installed: the template was not rendered');
        }
        $html = SmartyRenderer::render($page);
        $this->assertStringContainsString('<h4 class="geocatlive-logs-service">web</h4>', $html);
        $this->assertStringContainsString('web: &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; done', $html);
        $this->assertStringNotContainsString('<script>', $html);
    }

    public function testTheLogsPageSurvivesHugeLinesAndHugeAnswers(): void
    {
        $logs = geocatlive_Logs($this->params(self::$stub->url . '/logs-huge'))['vars']['logs'];
        $this->assertTrue($logs['available']);
        $this->assertSame(['web', 'db', 'extra'], array_column($logs['services'], 'name'));
        list($web, $db, $extra) = $logs['services'];
        $this->assertSame(array_fill(0, 3, str_repeat('é', GEOCATLIVE_LOG_LINE_CHARS) . ' … (cut: 5000 characters)'), $web['lines']);
        $this->assertCount(100, $db['lines'], 'the last 100 lines of a 2 MB answer, of which only the end was kept');
        $this->assertSame(str_pad('db line 19901 ', 99, '.'), $db['lines'][0]);
        $this->assertSame(str_pad('db line 20000 ', 99, '.'), end($db['lines']));
        $this->assertSame(['extra line'], $extra['lines']);
        $this->assertStringContainsString('(' . GEOCATLIVE_LOG_BYTES . ' bytes of text)', WhmcsRecorder::storedLog(), 'only the end was kept');
    }

    public function testTheLogsPageStopsReadingServicesWhenItsTimeIsUp(): void
    {
        // A budget of 0 s: the first service is read, the others are named as not shown (no timing is measured here).
        $logs = geocatlive_logsPage($this->params(self::$stub->url . '/logs-huge'), 0)['vars']['logs'];
        $this->assertTrue($logs['available']);
        $this->assertSame(['web'], array_column($logs['services'], 'name'));
        $this->assertSame('The logs took too long to read, so these services are not shown: db, extra. Please try again in a few minutes.',
            $logs['notice']);
    }

    public function testTheLogsPageTellsTheClientInPlainWordsWhenThereAreNone(): void
    {
        $notice = function (string $url, array $overrides = []) {
            return geocatlive_Logs($this->params($url, $overrides))['vars']['logs'];
        };
        $down = $notice(self::$down);
        $this->assertSame([false, 'The logs are not available right now; please try again in a few minutes.', []],
            [$down['available'], $down['notice'], $down['services']]);
        $this->assertSame('The logs are not available right now; please try again in a few minutes.', $notice(self::$stub->url . '/logs-html')['notice']);
        $this->assertSame('This service is not running, so it has no logs to show.', $notice(self::$stub->url . '/logs-stopped')['notice']);
        foreach ([$down, $notice(self::$stub->url . '/logs-html')] as $logs) {
            $this->assertStringNotContainsString('127.0.0.1', $logs['notice'], 'no internal detail');
        }
        $this->assertSame('The logs are not available right now; please try again in a few minutes.', geocatlive_Logs([])['vars']['logs']['notice']);
    }

    // -- status checks ------------------------------------------------------------------------------------------
    public static function inactiveStatuses(): array
    {
        return ['suspended' => ['Suspended', 'suspended'], 'pending' => ['Pending', 'not set up yet'],
            'terminated' => ['Terminated', 'terminated'], 'cancelled' => ['Cancelled', 'cancelled'], 'fraud' => ['Fraud', 'not active']];
    }

    /**
     * @dataProvider inactiveStatuses
     */
    public function testClientActionsOnAServiceThatIsNotActiveAreRefusedBeforeAnythingIsSent(string $status, string $words): void
    {
        // The stub records nothing: a refused call never reaches it (its address would answer otherwise).
        $params = $this->params(self::$stub->url . '/logs', ['status' => $status, 'configoption4' => 'on']);
        $_POST = ['backup_id' => '20261201T000000Z-0a1b2c3d'];
        $this->assertSame('GeoCat Live: this service is ' . $words . ', and it can be restored from a backup only while it is active.'
            . ' Please contact support if you need help.', geocatlive_RestoreBackup($params));
        $logs = geocatlive_Logs($params)['vars']['logs'];
        $this->assertSame('this service is ' . $words . ', and its logs can be shown only while it is active. Please contact support if you need help.',
            $logs['notice']);
        $this->assertSame('GeoCat Live: this service is ' . $words . ', and it can be restarted only while it is active. Please contact support if you need help.',
            geocatlive_clientRefusal($params, 'Restart', 'restarted', true));
        $this->assertNull(geocatlive_clientRefusal($params, 'Restart', 'restarted', false), 'staff: the bridge decides');
        foreach (WhmcsRecorder::$moduleLog as $entry) {
            $this->assertSame('(not sent)', $entry['request']);
        }
        $this->assertStringContainsString('(WHMCS status: ' . $status . ')', WhmcsRecorder::logOf('Logs')[0]['response']);
    }

    /**
     * In the client area (WHMCS's clientarea.php defines CLIENTAREA), Restart and Back up now of a suspended service
     * are refused before anything is sent; staff calling the same functions are left to the bridge.
     *
     * @runInSeparateProcess
     * @preserveGlobalState disabled
     */
    public function testInTheClientAreaRestartAndBackUpOfASuspendedServiceAreRefused(): void
    {
        define('CLIENTAREA', true);
        $this->assertTrue(geocatlive_inClientArea());
        $params = $this->params(self::$down, ['status' => 'Suspended']);
        $this->assertSame('GeoCat Live: this service is suspended, and it can be restarted only while it is active. Please contact support if you need help.',
            geocatlive_Restart($params));
        $this->assertSame('GeoCat Live: this service is suspended, and it can be backed up only while it is active. Please contact support if you need help.',
            geocatlive_BackUpNow($params));
        $this->assertSame(['(not sent)', '(not sent)'], array_column(WhmcsRecorder::$moduleLog, 'request'), 'nothing was sent');
        // Active: the call goes to the bridge (here: down). WHMCS shows the error to the client: no address, no curl error.
        $this->assertSame(GEOCATLIVE_CLIENT_UNAVAILABLE, geocatlive_Restart($this->params(self::$down)));
        $this->assertSame(GEOCATLIVE_CLIENT_UNAVAILABLE, geocatlive_BackUpNow($this->params(self::$stub->url . '/no-such-prefix')));
        $this->assertStringContainsString('the bridge cannot be reached at ' . self::$down, WhmcsRecorder::storedLog(), 'the detail: module log');
    }

    public function testAClientsRestoreNeverShowsTheBridgesAddressOrKeyAdvice(): void
    {
        $_POST = ['backup_id' => '20261201T000000Z-0a1b2c3d'];
        foreach ([self::$down, self::$stub->url . '/no-such-prefix'] as $url) {
            $message = geocatlive_RestoreBackup($this->params($url, ['configoption4' => 'on']));
            $this->assertSame(GEOCATLIVE_CLIENT_UNAVAILABLE, $message, $url);
        }
        $this->assertSame('GeoCat Live: restoring a backup from the client area is not enabled for this product; please contact support to have'
            . ' a backup restored.', geocatlive_RestoreBackup($this->params(self::$down)), 'the module\'s own refusal is for the client');
        // Staff (outside the client area) keep the whole reason.
        $this->assertStringStartsWith('GeoCat Live: the bridge cannot be reached at ' . self::$down, geocatlive_Restart($this->params(self::$down)));
    }

    public function testWhatAClientMayReadOfABridgeError(): void
    {
        $public = new \WHMCS\Module\Server\Geocatlive\BridgeException('GeoCat Live: order acme is suspended (HTTP 409).', 409, 'conflict');
        $this->assertSame('GeoCat Live: order acme is suspended (HTTP 409).', geocatlive_clientMessage($public));
        foreach ([[401, 'unauthorized'], [403, 'forbidden'], [404, 'not_bridge'], [500, 'internal_error'], [0, 'network'], [0, 'configuration']] as list($status, $code)) {
            $this->assertSame(GEOCATLIVE_CLIENT_UNAVAILABLE, geocatlive_clientMessage(new \WHMCS\Module\Server\Geocatlive\BridgeException('detail', $status, $code)), $code);
        }
    }

    public function testAnActiveServiceOrOneWithoutAStatusMayGoOn(): void
    {
        $this->assertNull(geocatlive_clientRefusal(['status' => 'Active'], 'Restart', 'restarted', true));
        $this->assertNull(geocatlive_clientRefusal(['status' => 'active'], 'Restart', 'restarted', true));
        $this->assertNull(geocatlive_clientRefusal([], 'Restart', 'restarted', true), 'an older WHMCS without status: the bridge decides');
        $this->assertFalse(geocatlive_inClientArea(), 'the tests run outside the client area');
    }

    // -- admin tab and daily report -----------------------------------------------------------------------------
    public function testRuntimeAndDriftInWords(): void
    {
        $this->assertSame('running (checked 2026-12-01 10:00 UTC): db running (healthy), app running',
            geocatlive_runtimeText(['state' => 'running', 'observed_at' => '2026-12-01T10:00:05Z', 'age_seconds' => 1.5, 'services' => [
                ['service' => 'db', 'state' => 'running', 'health' => 'healthy'], ['service' => 'app', 'state' => 'running', 'health' => null]]]));
        $this->assertSame('unknown', geocatlive_runtimeText(['state' => 'unknown', 'observed_at' => null, 'services' => []]));
        $this->assertSame('unknown (the bridge does not report it)', geocatlive_runtimeText(null));
        $this->assertSame('ok: what the last deploy made runs', geocatlive_driftText(['state' => 'ok', 'problems' => []]));
        $this->assertSame('drifted since 2026-12-01 09:00 UTC: app exited (exit code 1) (1 repair queued recently)',
            geocatlive_driftText(['state' => 'drifted', 'detected_at' => '2026-12-01T09:00:00Z', 'failing_since' => null, 'reason' => null,
                'repairs' => 1, 'problems' => [['service' => 'app', 'kind' => 'exited', 'detail' => 'exit code 1']]]));
        $this->assertSame('failing since 2026-12-01 09:30 UTC: crash loop; app crash_loop',
            geocatlive_driftText(['state' => 'failing', 'detected_at' => '2026-12-01T09:00:00Z', 'failing_since' => '2026-12-01T09:30:00Z',
                'reason' => 'crash loop', 'repairs' => 0, 'problems' => [['service' => 'app', 'kind' => 'crash_loop', 'detail' => '']]]));
        $this->assertSame('not checked yet (no deploy recorded what should run)', geocatlive_driftText(null));
    }

    public function testTheDailyReportNamesEveryFailingOrder(): void
    {
        $lines = [];
        $server = WhmcsParams::server(self::$stub->url . '/failing', self::TOKEN) + ['servername' => 'Live'];
        $this->assertSame(1, FailureReport::report([$server], function ($line) use (&$lines) {
            $lines[] = $line;
        }, time() - 86400));
        $this->assertSame(['GeoCat Live: FAILING: service #4242 (instance acme) is failing since 2026-12-01T09:00:00Z: crash loop: app restarted'
            . ' 6 times in 10 minutes (app crash_loop: exit code 1). The bridge does not repair it until an operation succeeds on it:'
            . ' look at the service\'s page (GeoCat Live drift), then Redeploy or Restart it.'], $lines);
    }

    public function testTheNewFunctionsAnswerEmptyParamsWithTheirTypes(): void
    {
        $this->assertSame(['success' => false, 'accounts' => []], array_intersect_key(geocatlive_ListAccounts([]), ['success' => 0, 'accounts' => 0]));
        $this->assertInstanceOf(ProviderInterface::class, geocatlive_MetricProvider([]));
        $this->assertCount(3, geocatlive_MetricProvider([])->metrics(), 'metrics() needs no server (WHMCS asks it about products)');
        $this->assertSame('templates/logs', geocatlive_Logs([])['templatefile']);
        $this->assertInstanceOf(BridgeClient::class, BridgeClient::fromServerParams(WhmcsParams::server(self::$down, self::TOKEN)));
    }
}
