<?php
/**
 * Backups (issue 13) through the module functions, against the wire emulator
 * (fixtures/broken_bridge.php) answering the backup routes as docs/API.md and the
 * issue's contract describe them: the client area's list, "Back up now", the staff
 * restore from the admin tab (the service's own backups and the client's terminated
 * services' final backups), the client restore and its setting, and the daily report.
 *
 * Services 9400-9499 are active in the emulator; a service id ending in 0 has no backups.
 */

use PHPUnit\Framework\TestCase;
use WHMCS\Database\Capsule;
use WHMCS\Module\Server\Geocatlive\BridgeClient;
use WHMCS\Module\Server\Geocatlive\BridgeException;

final class BackupsWireTest extends TestCase
{
    const TOKEN = 'live_stubstub_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG';
    const NEWEST = '20260103T021500Z-0a1b2c3d';
    const FINAL = '20251220T120000Z-3d4e5f60';

    /** @var StubServer */
    private static $stub;

    public static function setUpBeforeClass(): void
    {
        self::$stub = StubServer::brokenBridge();
    }

    public static function tearDownAfterClass(): void
    {
        self::$stub->stop();
    }

    protected function setUp(): void
    {
        WhmcsRecorder::reset();
        Capsule::reset();
        file_put_contents(self::$stub->requestLog, '');
        $_GET = $_POST = $_REQUEST = [];
        $_SESSION = [];
    }

    protected function tearDown(): void
    {
        $_GET = $_POST = $_REQUEST = [];
        unset($_SESSION);
    }

    private function params(int $id, string $mode = 'record', array $overrides = []): array
    {
        // An active service: a client may restore into an active service only (geocatlive_clientRefusal).
        return WhmcsParams::service($id, self::$stub->url . '/' . $mode, self::TOKEN, array_replace(['status' => 'Active'], $overrides));
    }

    /** @return string[] "METHOD route" of each request the emulator received */
    private function calls(): array
    {
        return array_map(function ($request) {
            return $request['method'] . ' ' . $request['route'];
        }, self::$stub->requests());
    }

    /** A form post to the client area or the admin page, as PHP presents it to the module. */
    private function post(array $fields): void
    {
        $_POST = $fields;
        $_REQUEST = $fields;
    }

    // -- the client area ----------------------------------------------------------

    public function testTheClientAreaListsTheServicesOwnBackupsNewestFirst(): void
    {
        $live = geocatlive_ClientArea($this->params(9401))['vars']['live'];
        $this->assertTrue($live['available']);
        $backups = $live['backups'];
        $this->assertTrue($backups['available']);
        $this->assertSame(9401, $backups['serviceId'], 'the service id from $params, for the forms');
        $this->assertSame([self::NEWEST, '20260102T174512Z-1b2c3d4e', '20260102T090000Z-2c3d4e5f'], array_column($backups['items'], 'id'));
        $this->assertSame(['2026-01-03 02:15 UTC', '2026-01-02 17:45 UTC', '2026-01-02 09:00 UTC'], array_column($backups['items'], 'createdAt'));
        $this->assertSame(['Scheduled', 'On demand', '<script>alert("kind")</script>'], array_column($backups['items'], 'kindLabel'),
            'plain text; the template escapes it');
        $this->assertSame(['1.2 GB', '50.0 MB', '900 bytes'], array_column($backups['items'], 'size'));
        $this->assertSame('db, web', $backups['items'][0]['services']);
        $this->assertArrayNotHasKey('restorable', $backups, 'clients never see other services\' backups');
        $this->assertSame('2026-01-03 02:15 UTC', $backups['lastSuccessAt']);
        $this->assertSame(['at' => '2026-01-02 02:15 UTC', 'kind' => 'scheduled', 'kindLabel' => 'Scheduled',
            'error' => 'the backup storage cannot be used right now <b>'], $backups['lastFailure']);
        $this->assertFalse($backups['failing'], 'the last failure is older than the last success');
        $this->assertTrue($backups['canBackUp']);
        $this->assertFalse($backups['canRestore'], 'the product does not let clients restore (default)');
        $this->assertSame(['GET /whmcs/v1/services/9401', 'GET /whmcs/v1/services/9401/backups'], $this->calls());

        $allowed = geocatlive_ClientArea($this->params(9401, 'record', ['configoption4' => 'on']))['vars']['live']['backups'];
        $this->assertTrue($allowed['canRestore']);
    }

    public function testNothingIsOfferedForAServiceThatIsNotActive(): void
    {
        // The emulator's service 9001 is still being set up.
        $backups = geocatlive_ClientArea($this->params(9001, 'record', ['configoption4' => 'on']))['vars']['live']['backups'];
        $this->assertTrue($backups['available']);
        $this->assertFalse($backups['canBackUp']);
        $this->assertFalse($backups['canRestore']);
    }

    public function testANewServiceHasNoBackupsYet(): void
    {
        $backups = geocatlive_ClientArea($this->params(9410))['vars']['live']['backups'];
        $this->assertTrue($backups['available']);
        $this->assertSame([], $backups['items']);
        $this->assertSame('', $backups['lastSuccessAt']);
        $this->assertNull($backups['lastFailure']);
    }

    public function testTheStoreUnreachableLeavesTheRestOfTheClientAreaAndSaysSoWithoutDetail(): void
    {
        $live = geocatlive_ClientArea($this->params(9402, 'store-down'))['vars']['live'];
        $this->assertTrue($live['available']);
        $this->assertSame('river-maps.geocat.live', $live['hostname']);
        $this->assertFalse($live['backups']['available']);
        $this->assertSame('The list of backups is not available right now; please try again in a few minutes.', $live['backups']['notice']);
        $this->assertSame([], $live['backups']['items']);
        // Staff get the bridge's reason in the module log.
        $this->assertStringContainsString('backup_store', WhmcsRecorder::logOf('ClientArea')[1]['response']);
    }

    public function testABridgeFromBeforeBackupsOnlyHidesTheList(): void
    {
        $live = geocatlive_ClientArea($this->params(9403, 'no-backups'))['vars']['live'];
        $this->assertTrue($live['available']);
        $this->assertFalse($live['backups']['available']);
        $this->assertSame('The list of backups is not available right now; please try again in a few minutes.', $live['backups']['notice']);

        $tab = html_entity_decode(geocatlive_AdminServicesTabFields($this->params(9403, 'no-backups'))['GeoCat Live backups'], ENT_QUOTES);
        $this->assertStringStartsWith('GeoCat Live: ' . self::$stub->url . '/no-backups/whmcs/v1/services/9403/backups is not the GeoCat Live Bridge\'s WHMCS API', $tab);
        $this->assertStringEndsWith('A bridge from before backups (issue 13) has no backup routes either: update the bridge if the rest of this page works.', $tab);
    }

    // -- Back up now ------------------------------------------------------------------

    public function testBackUpNowQueuesAnOnDemandBackupForTheParamsService(): void
    {
        // Whatever the request says, the service id comes from $params.
        $this->post(['id' => '1', 'serviceid' => '1', 'modop' => 'custom', 'a' => 'BackUpNow']);
        $this->assertSame('success', geocatlive_BackUpNow($this->params(9404, 'record', ['configoption3' => '15'])));
        $requests = self::$stub->requests();
        $this->assertCount(1, $requests);
        $this->assertSame(['POST', '/whmcs/v1/services/9404/backups', ['wait' => 15]], [$requests[0]['method'], $requests[0]['route'], $requests[0]['body']]);
        $this->assertSame('Bearer ' . self::TOKEN, $requests[0]['authorization']);
    }

    public function testBackUpNowSaysWhyItCouldNotStart(): void
    {
        $this->assertSame('GeoCat Live: the backup storage cannot be used right now (HTTP 503, request id req-store); try again in 5 seconds.',
            geocatlive_BackUpNow($this->params(9405, 'store-down')));
        $this->assertStringStartsWith('GeoCat Live: the bridge recorded the backup (operation #41), but its worker is not running (last heartbeat 5 minutes ago)',
            geocatlive_BackUpNow($this->params(9405, 'no-worker')));
        $this->assertSame('GeoCat Live: no WHMCS service id in the module parameters.', geocatlive_BackUpNow([]));
    }

    // -- the client restore -------------------------------------------------------------

    public function testAClientRestoreIsRefusedInPhpWhenTheProductDoesNotAllowIt(): void
    {
        $this->post(['id' => '9406', 'modop' => 'custom', 'a' => 'RestoreBackup', 'backup_id' => self::NEWEST]);
        foreach (['', '0', 'off'] as $setting) {
            $this->assertSame('GeoCat Live: restoring a backup from the client area is not enabled for this product; please contact support to have a backup restored.',
                geocatlive_RestoreBackup($this->params(9406, 'record', ['configoption4' => $setting])), var_export($setting, true));
        }
        $this->assertSame([], self::$stub->requests(), 'nothing reached the bridge');
        $log = WhmcsRecorder::logOf('RestoreBackup');
        $this->assertCount(3, $log, 'each refusal is in the module log');
        $this->assertSame('(not sent)', $log[0]['request']);
    }

    public function testAClientRestoresOneOfTheServicesBackupsWhenAllowed(): void
    {
        $this->post(['id' => '1', 'modop' => 'custom', 'a' => 'RestoreBackup', 'backup_id' => self::NEWEST]);
        $this->assertSame('success', geocatlive_RestoreBackup($this->params(9407, 'record', ['configoption4' => 'on', 'configoption3' => '0'])));
        $this->assertSame(['GET /whmcs/v1/services/9407/backups', 'POST /whmcs/v1/services/9407/backups/' . self::NEWEST . '/restore'], $this->calls());
        $this->assertSame(['wait' => 0], self::$stub->requests()[1]['body']);
    }

    public function testALinkNeverRestores(): void
    {
        $_GET = $_REQUEST = ['action' => 'productdetails', 'id' => '9407', 'modop' => 'custom', 'a' => 'RestoreBackup', 'backup_id' => self::NEWEST];
        $this->assertSame('GeoCat Live: no backup was chosen to restore.', geocatlive_RestoreBackup($this->params(9407, 'record', ['configoption4' => 'on'])));
        $this->assertSame([], self::$stub->requests());
    }

    public function testAClientCannotRestoreAnotherServicesFinalBackup(): void
    {
        // The final backup of the client's terminated service 9050 is listed as restorable: for staff only.
        $this->post(['modop' => 'custom', 'a' => 'RestoreBackup', 'backup_id' => self::FINAL]);
        $this->assertSame('GeoCat Live: backup ' . self::FINAL . ' is not a backup of this service; reload the page to see the current list.',
            geocatlive_RestoreBackup($this->params(9408, 'record', ['configoption4' => 'on'])));
        $this->assertSame(['GET /whmcs/v1/services/9408/backups'], $this->calls(), 'no restore was sent');
    }

    public static function requestedIds(): array
    {
        return [
            'none' => [null, 'GeoCat Live: no backup was chosen to restore.', 0],
            'empty' => ['  ', 'GeoCat Live: no backup was chosen to restore.', 0],
            'a path' => ['../../orders/1', 'GeoCat Live: "../../orders/1" is not a backup id.', 0],
            'markup' => ['<b>x</b>', 'GeoCat Live: "<b>x</b>" is not a backup id.', 0],
            'an array' => [['x'], 'GeoCat Live: no backup was chosen to restore.', 0],
            'unknown' => ['20200101T000000Z-00000000', 'GeoCat Live: backup 20200101T000000Z-00000000 is not a backup of this service; reload the page to see the current list.', 1],
        ];
    }

    /**
     * @dataProvider requestedIds
     */
    public function testAClientRestoreOfAnythingElseIsRefused($backupId, string $expected, int $requests): void
    {
        $this->post($backupId === null ? ['a' => 'RestoreBackup'] : ['a' => 'RestoreBackup', 'backup_id' => $backupId]);
        $this->assertSame($expected, geocatlive_RestoreBackup($this->params(9409, 'record', ['configoption4' => 'on'])));
        $this->assertCount($requests, self::$stub->requests());
    }

    // -- the staff restore (admin services tab) -------------------------------------------

    public function testTheAdminTabListsBackupsRestorableFinalBackupsAndTheRestoreChoice(): void
    {
        $tab = geocatlive_AdminServicesTabFields($this->params(9411));
        $this->assertSame('last success: 2026-01-03 02:15 UTC; last failure: 2026-01-02 02:15 UTC (Scheduled): the backup storage cannot be used right now &lt;b&gt;',
            $tab['GeoCat Live last backup']);
        $this->assertStringContainsString('<td>2026-01-03 02:15 UTC</td><td>Scheduled</td><td>1.2 GB</td><td>db, web</td><td>r3, plan small</td><td><code>' . self::NEWEST . '</code></td>',
            $tab['GeoCat Live backups']);
        $this->assertStringContainsString('<td>&lt;script&gt;alert(&quot;kind&quot;)&lt;/script&gt;</td>', $tab['GeoCat Live backups']);
        $this->assertStringContainsString('<td>service #9050 (order 7)</td><td>2025-12-20 12:00 UTC</td><td>Final (at termination)</td><td>3.0 GB</td>',
            $tab['GeoCat Live restorable final backups']);
        $restore = $tab['GeoCat Live restore'];
        $this->assertStringContainsString('<select name="geocatlive_restore" class="form-control select-inline"><option value="" selected>(no restore)</option>', $restore);
        $this->assertStringContainsString('<option value="' . self::NEWEST . '">2026-01-03 02:15 UTC, Scheduled, 1.2 GB</option>', $restore);
        $this->assertStringContainsString('<option value="' . self::FINAL . '">final backup of terminated service #9050, 2025-12-20 12:00 UTC, 3.0 GB</option>', $restore);
        $this->assertStringContainsString('<input type="checkbox" name="geocatlive_restore_confirm" value="1">', $restore);
        $this->assertStringNotContainsString('<script', implode('', $tab));
        $this->assertStringNotContainsString('type="submit"', implode('', $tab), 'no submit button: pressing Enter in the service form never restores');
    }

    public function testTheAdminTabOffersNoRestoreForAServiceThatIsNotActiveOrHasNoBackups(): void
    {
        $pending = geocatlive_AdminServicesTabFields($this->params(9002));
        $this->assertSame('A backup can be restored into an active service only (this one is pending).', $pending['GeoCat Live restore']);
        $new = geocatlive_AdminServicesTabFields($this->params(9420));
        $this->assertSame('none yet', $new['GeoCat Live backups']);
        $this->assertArrayNotHasKey('GeoCat Live restore', $new);
        $this->assertArrayNotHasKey('GeoCat Live restorable final backups', $new);
    }

    public function testTheAdminTabSaysWhenTheStoreCannotBeReached(): void
    {
        $tab = geocatlive_AdminServicesTabFields($this->params(9412, 'store-down'));
        $this->assertSame('Active: busybox-demo, plan small', $tab['GeoCat Live status'], 'the rest of the tab is there');
        $this->assertSame('GeoCat Live: the backup storage cannot be used right now (HTTP 503, request id req-store); try again in 5 seconds.',
            $tab['GeoCat Live backups']);
    }

    public function testStaffRestoreABackupOfTheServiceBySaving(): void
    {
        $params = $this->params(9413, 'record', ['configoption3' => '30']);
        $this->post(['geocatlive_restore' => self::NEWEST, 'geocatlive_restore_confirm' => '1', 'domain' => 'whatever']);
        $this->assertNull(geocatlive_AdminServicesTabFieldsSave($params));
        $this->assertSame(['GET /whmcs/v1/services/9413/backups', 'POST /whmcs/v1/services/9413/backups/' . self::NEWEST . '/restore'], $this->calls());
        $this->assertSame(['wait' => 30], self::$stub->requests()[1]['body']);
        $expected = 'GeoCat Live: restore of backup ' . self::NEWEST . ' into service #9413 started; the bridge backs up the current data first.'
            . ' Follow it in "GeoCat Live operation".';
        $this->assertSame([$expected], WhmcsRecorder::$activity);

        // The next time the tab is shown (after WHMCS's redirect), it says how the restore went, once.
        $_POST = $_REQUEST = [];
        $this->assertSame(htmlspecialchars($expected, ENT_QUOTES), geocatlive_AdminServicesTabFields($params)['GeoCat Live restore result']);
        $this->assertArrayNotHasKey('GeoCat Live restore result', geocatlive_AdminServicesTabFields($params));
    }

    public function testStaffRestoreAFinalBackupOfTheClientsTerminatedServiceIntoThisOne(): void
    {
        $this->post(['geocatlive_restore' => self::FINAL, 'geocatlive_restore_confirm' => 'on']);
        geocatlive_AdminServicesTabFieldsSave($this->params(9414));
        $this->assertSame(['GET /whmcs/v1/services/9414/backups', 'POST /whmcs/v1/services/9414/backups/' . self::FINAL . '/restore'], $this->calls());
        $this->assertStringContainsString('restore of backup ' . self::FINAL . ' into service #9414 started', WhmcsRecorder::$activity[0]);
    }

    public function testASaveWithoutTheConfirmationRestoresNothing(): void
    {
        $this->post(['geocatlive_restore' => self::NEWEST]);
        geocatlive_AdminServicesTabFieldsSave($this->params(9415));
        $this->assertSame([], self::$stub->requests());
        $expected = 'GeoCat Live: restore of backup ' . self::NEWEST . ' into service #9415 not started: tick "Replace this service\'s data"'
            . ' next to the backup to confirm, then save.';
        $this->assertSame([$expected], WhmcsRecorder::$activity);
        $this->assertSame(htmlspecialchars($expected, ENT_QUOTES), geocatlive_AdminServicesTabFields($this->params(9415))['GeoCat Live restore result']);
    }

    public function testAnOrdinarySaveOfTheServiceDoesNothingHere(): void
    {
        $this->post(['geocatlive_restore' => '', 'geocatlive_restore_confirm' => '1', 'domain' => 'maps.example.org']);
        $this->assertNull(geocatlive_AdminServicesTabFieldsSave($this->params(9416)));
        $this->post([]);
        $this->assertNull(geocatlive_AdminServicesTabFieldsSave($this->params(9416)));
        $this->assertNull(geocatlive_AdminServicesTabFieldsSave([]));
        $this->assertSame([], self::$stub->requests());
        $this->assertSame([], WhmcsRecorder::$activity);
    }

    public function testAStaffRestoreTheBridgeRefusesIsReported(): void
    {
        $this->post(['geocatlive_restore' => '20200101T000000Z-00000000', 'geocatlive_restore_confirm' => '1']);
        geocatlive_AdminServicesTabFieldsSave($this->params(9417));
        $this->assertSame(['GeoCat Live: restore of backup 20200101T000000Z-00000000 into service #9417 not started: backup 20200101T000000Z-00000000'
            . ' is not a backup of this service, nor the final backup of one of this client\'s terminated services of the same product;'
            . ' reload the page to see the current list.'], WhmcsRecorder::$activity);

        WhmcsRecorder::reset();
        $this->post(['geocatlive_restore' => self::NEWEST, 'geocatlive_restore_confirm' => '1']);
        geocatlive_AdminServicesTabFieldsSave($this->params(9417, 'store-down'));
        $this->assertSame(['GeoCat Live: restore of backup ' . self::NEWEST . ' into service #9417 not started: the backup storage cannot be used right now'
            . ' (HTTP 503, request id req-store); try again in 5 seconds.'], WhmcsRecorder::$activity);
    }

    // -- the wire ---------------------------------------------------------------------

    public function testAnUnknownBackupIsTheBridgesAnswerNotAWrongAddress(): void
    {
        $client = new BridgeClient(self::$stub->url . '/record', self::TOKEN);
        try {
            $client->post('/whmcs/v1/services/9418/backups/20200101T000000Z-00000000/restore', ['wait' => 0]);
            $this->fail('an unknown backup is an error');
        } catch (BridgeException $e) {
            $this->assertTrue($e->isBackupNotFound());
            $this->assertFalse($e->isNotTheBridge());
            $this->assertSame('GeoCat Live: no backup 20200101T000000Z-00000000 (HTTP 404).', $e->getMessage());
        }
        // An unknown route under .../backups/ (a bridge from before backups) stays "not the bridge".
        try {
            (new BridgeClient(self::$stub->url . '/no-backups', self::TOKEN))->post('/whmcs/v1/services/9418/backups/' . self::NEWEST . '/restore');
            $this->fail('an unknown route is an error');
        } catch (BridgeException $e) {
            $this->assertTrue($e->isNotTheBridge());
            $this->assertFalse($e->isBackupNotFound());
        }
    }

    public function testBackupCallsAreLoggedWithSecretsMasked(): void
    {
        $this->post(['backup_id' => self::NEWEST]);
        geocatlive_BackUpNow($this->params(9419));
        geocatlive_RestoreBackup($this->params(9419, 'record', ['configoption4' => 'on']));
        $this->assertSame(['BackUpNow', 'RestoreBackup', 'RestoreBackup'], array_column(WhmcsRecorder::$moduleLog, 'action'));
        $stored = WhmcsRecorder::storedLog();
        foreach ([self::TOKEN, WhmcsParams::SERVER_PASSWORD, WhmcsParams::SERVICE_PASSWORD] as $secret) {
            $this->assertStringNotContainsString($secret, $stored);
        }
        $this->assertStringContainsString('POST ' . self::$stub->url . '/record/whmcs/v1/services/9419/backups/' . self::NEWEST . '/restore', $stored);
    }

    // -- the daily cron hook ---------------------------------------------------------------

    public function testTheDailyHookReportsFailedBackupsClearly(): void
    {
        $stub = parse_url(self::$stub->url);
        Capsule::$tables['tblservers'] = [
            ['id' => 1, 'name' => 'Live EU', 'type' => 'geocatlive', 'disabled' => 0, 'hostname' => '127.0.0.1/backup-failures', 'ipaddress' => '',
                'port' => (string) $stub['port'], 'secure' => '', 'accesshash' => self::TOKEN, 'password' => ''],
        ];
        WhmcsRecorder::runHook('DailyCronJob', []);
        $this->assertSame([
            'GeoCat Live: BACKUP FAILED: backup of service #9301 failed, no new backup was taken: the backup storage cannot be used right now'
                . ' (instance river-maps, 2026-01-02T02:15:09Z)',
            'GeoCat Live: BACKUP FAILED: change_plan of service #9302 failed at the backup before the change: the backup before the change failed:'
                . ' the backup storage cannot be used right now (instance lake-maps, 2026-01-02T03:00:00Z)',
            'GeoCat Live: create of service #9303 failed: image live-test/no-such-image:1 is not available (instance sea-maps, 2026-01-02T04:00:00Z)',
            'GeoCat Live: BACKUP FAILED: backup of service #9301 failed, no new backup was taken: dump of service db failed:  pg_dump: error'
                . ' (instance river-maps, 2026-01-02T05:00:00Z)',
        ], array_slice(WhmcsRecorder::$activity, 0, 4));
        $this->assertCount(5, WhmcsRecorder::$activity);
        $this->assertMatchesRegularExpression('/^GeoCat Live: 3 failed backups since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ on server Live EU \(services #9301, #9302\):'
            . ' those services may have no recent backup\. `flask --app wsgi live doctor` on the bridge checks the backup store;'
            . ' "Back up now" on a service\'s page takes a new one\.$/', WhmcsRecorder::$activity[4]);
    }

    public static function failures(): array
    {
        return [
            'a backup' => [['kind' => 'backup', 'error' => 'x'], 'backup'],
            'a backup, with its kind' => [['kind' => 'backup', 'backup_kind' => 'scheduled', 'error' => 'x'], 'backup'],
            'an upgrade at its backup' => [['kind' => 'upgrade', 'error' => 'the backup storage cannot be used right now'], 'pre_change'],
            'a change that says so' => [['kind' => 'change_plan', 'backup_kind' => 'pre_change', 'error' => 'store refused'], 'pre_change'],
            'a change that failed later' => [['kind' => 'change_plan', 'error' => 'health check of db timed out'], ''],
            'a change whose backup was fine' => [['kind' => 'change_plan', 'backup_kind' => '', 'error' => 'image x is not available'], ''],
            'a restore' => [['kind' => 'restore', 'error' => 'the backup is damaged and was not restored; nothing was changed'], ''],
            'a create' => [['kind' => 'create', 'error' => 'backup'], ''],
            'no kind' => [['error' => 'backup'], ''],
        ];
    }

    /**
     * @dataProvider failures
     */
    public function testWhichFailuresAreFailedBackups(array $failure, string $expected): void
    {
        $this->assertSame($expected, \WHMCS\Module\Server\Geocatlive\FailureReport::backupFailure($failure));
    }

    public function testAFailureThatNamesItsBackupKindSaysIt(): void
    {
        $this->assertSame('GeoCat Live: BACKUP FAILED: scheduled backup of service #7 failed, no new backup was taken: store refused',
            \WHMCS\Module\Server\Geocatlive\FailureReport::line(['kind' => 'backup', 'backup_kind' => 'scheduled', 'service_id' => 7, 'error' => 'store refused']));
        $this->assertSame('GeoCat Live: BACKUP FAILED: on-demand backup of service #7 failed, no new backup was taken: no reason given',
            \WHMCS\Module\Server\Geocatlive\FailureReport::line(['kind' => 'backup', 'backup_kind' => 'on_demand', 'service_id' => 7]));
    }
}
