<?php
/**
 * The module against bridges that misbehave at the wire level: a closed port,
 * PHP's built-in server answering garbage (fixtures/broken_bridge.php), a
 * self-signed TLS server. Also what the module sends, and what it logs.
 */

use PHPUnit\Framework\TestCase;
use WHMCS\Database\Capsule;
use WHMCS\Module\Server\Geocatlive\BridgeClient;
use WHMCS\Module\Server\Geocatlive\BridgeException;

final class BridgeWireTest extends TestCase
{
    const TOKEN = 'live_stubstub_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG';

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
    }

    /** Module parameters for service $id on the stub, in one of its modes. */
    private function params(int $id, string $mode, array $overrides = []): array
    {
        return WhmcsParams::service($id, self::$stub->url . '/' . $mode, self::TOKEN, $overrides);
    }

    /** @return array the stub's recorded requests */
    private function requests(): array
    {
        return self::$stub->requests();
    }

    public function testBridgeDownIsReportedWithItsAddressAtOnce(): void
    {
        $port = StubServer::freePort();
        $params = WhmcsParams::service(9001, 'http://127.0.0.1:' . $port, self::TOKEN);
        $started = microtime(true);
        $result = geocatlive_CreateAccount($params);
        $this->assertLessThan(5, microtime(true) - $started);
        $this->assertStringStartsWith('GeoCat Live: the bridge cannot be reached at http://127.0.0.1:' . $port . ' (', $result);
        $this->assertStringContainsString('check that it runs', $result);
        foreach (['SuspendAccount', 'UnsuspendAccount', 'TerminateAccount', 'ChangePackage', 'Restart', 'Redeploy', 'UsageUpdate'] as $function) {
            $this->assertStringContainsString('cannot be reached', call_user_func('geocatlive_' . $function, $params), $function);
        }
        $this->assertStringContainsString('cannot be reached', geocatlive_TestConnection($params)['error']);
        $this->assertStringContainsString('cannot be reached', geocatlive_AdminServicesTabFields($params)['GeoCat Live']);
        $this->assertSame('The service details are not available right now; please try again in a few minutes.',
            geocatlive_ClientArea($params)['vars']['live']['notice'], 'clients get no internal address');
        $this->assertCount(1, WhmcsRecorder::logOf('CreateAccount'));
        $this->assertStringContainsString('curl error 7', WhmcsRecorder::logOf('CreateAccount')[0]['response']);
    }

    public function testInvalidJsonIsReported(): void
    {
        // HTTP 200 with an HTML page: another web server answers at this address.
        $result = geocatlive_CreateAccount($this->params(9002, 'invalid-json'));
        $this->assertSame('GeoCat Live: ' . self::$stub->url . '/invalid-json/whmcs/v1/services/9002/create is not the GeoCat Live Bridge\'s WHMCS API'
            . ' (POST got HTTP 200, not JSON: "Welcome to nginx!"): check the server\'s Hostname (with the bridge\'s path prefix, if it has one),'
            . ' Port and "Secure" tick in System Settings > Servers.', $result);
    }

    public function testHttpErrorWithoutJsonIsReported(): void
    {
        $result = geocatlive_SuspendAccount($this->params(9003, 'http-500'));
        $this->assertStringStartsWith('GeoCat Live: POST ' . self::$stub->url . '/http-500/whmcs/v1/services/9003/suspend answered HTTP 500 without the bridge\'s JSON error:'
            . ' "500 Internal Server Error Internal Server Error": a proxy in front of the bridge may not reach it (is the bridge running?),'
            . ' or the server\'s Hostname, Port or "Secure" tick point to another web server', $result);
        $this->assertMatchesRegularExpression('/request id whmcs-[0-9a-f]{16}\)\.$/', $result);
    }

    public function testTheBridgesErrorMessageIsPassedOn(): void
    {
        $this->assertSame('GeoCat Live: the database is unavailable; try again shortly (HTTP 503, request id req-503); try again in 5 seconds.',
            geocatlive_UnsuspendAccount($this->params(9004, 'unavailable')));
        $this->assertSame('GeoCat Live: no order for WHMCS service 9004 (HTTP 404).', geocatlive_Restart($this->params(9004, 'missing')));
        $this->assertStringContainsString('rejected the API key (HTTP 401)', geocatlive_TerminateAccount($this->params(9004, 'unauthorized')));
    }

    public function testFailedAndUnknownResults(): void
    {
        $this->assertSame('GeoCat Live: create failed: image live-test/no-such-image:1 is not available',
            geocatlive_CreateAccount($this->params(9005, 'failed')));
        $this->assertSame('GeoCat Live: unexpected answer from the bridge (result "maybe").', geocatlive_Redeploy($this->params(9005, 'weird')));
    }

    public function testWorkThatNoWorkerRunsIsARetryableErrorForEveryLifecycleCall(): void
    {
        // Issue 10: the bridge recorded the call, but no worker runs it. WHMCS must not mark the service
        // Active (nor send the welcome email); the Module Queue retries it later, which is safe.
        $expected = 'GeoCat Live: the bridge recorded the create (operation #41), but its worker is not running (last heartbeat 5 minutes ago),'
            . ' so nothing has been done yet. Nothing is lost: the call is recorded and safe to repeat. Retry it from Utilities > Module Queue'
            . ' (or run this action again) once the bridge\'s worker runs again; `flask --app wsgi live doctor` on the bridge says what is wrong.';
        $this->assertSame($expected, geocatlive_CreateAccount($this->params(9010, 'no-worker')));
        $calls = ['SuspendAccount' => 'suspend', 'UnsuspendAccount' => 'unsuspend', 'TerminateAccount' => 'terminate',
            'ChangePackage' => 'change_plan', 'Restart' => 'restart', 'Redeploy' => 'redeploy'];
        foreach ($calls as $function => $kind) {
            $this->assertStringStartsWith('GeoCat Live: the bridge recorded the ' . $kind . ' (operation #41), but its worker is not running',
                call_user_func('geocatlive_' . $function, $this->params(9010, 'no-worker')), $function);
        }
        $this->assertCount(7, $this->requests(), 'one call each, no retry loop in the module');
        // The module log has the bridge's whole answer for staff.
        $this->assertStringContainsString('"alive":false', WhmcsRecorder::logOf('CreateAccount')[0]['response']);
    }

    public function testARunningOperationWhoseWorkerStoppedIsARetryableError(): void
    {
        $this->assertSame('GeoCat Live: the bridge\'s worker stopped while running the restart (operation #41) (no worker heartbeat), so it has not finished.'
            . ' Nothing is lost: the call is recorded and safe to repeat. Retry it from Utilities > Module Queue (or run this action again) once'
            . ' the bridge\'s worker runs again; `flask --app wsgi live doctor` on the bridge says what is wrong.',
            geocatlive_Restart($this->params(9011, 'worker-stopped')));
    }

    public function testQueuedWithALiveWorkerAndAnOlderBridgesAcceptedAreSuccess(): void
    {
        $this->assertSame('success', geocatlive_CreateAccount($this->params(9012, 'record')));
        $this->assertStringContainsString('"result":"queued"', WhmcsRecorder::logOf('CreateAccount')[0]['response']);
        $this->assertStringContainsString('"alive":true', WhmcsRecorder::logOf('CreateAccount')[0]['response']);
        $this->assertSame('success', geocatlive_CreateAccount($this->params(9012, 'old-bridge')), 'a bridge before the heartbeat');
    }

    public function testRedirectsAreNotFollowed(): void
    {
        $result = geocatlive_CreateAccount($this->params(9006, 'redirect'));
        $this->assertSame('GeoCat Live: ' . self::$stub->url . '/redirect/whmcs/v1/services/9006/create is not the GeoCat Live Bridge\'s WHMCS API'
            . ' (POST got a redirect (HTTP 301 to https://bridge.example.org/whmcs/v1/services/9006/create)): check the server\'s Hostname'
            . ' (with the bridge\'s path prefix, if it has one), Port and "Secure" tick in System Settings > Servers;'
            . ' a redirect to https means the address wants https: tick "Secure" and set the Port.', $result);
        $this->assertCount(1, $this->requests(), 'the redirect is not followed');
    }

    public function testATimeoutSaysTheOperationMayStillRun(): void
    {
        $params = $this->params(9007, 'slow');
        $client = BridgeClient::fromServerParams($params, null, ['response_margin' => 1]);
        $started = microtime(true);
        try {
            $client->post('/whmcs/v1/services/9007/create', ['wait' => 0]);
            $this->fail('the stub answers after 3 seconds');
        } catch (BridgeException $e) {
            $this->assertLessThan(2.9, microtime(true) - $started);
            $this->assertSame('GeoCat Live: the bridge at ' . self::$stub->url . '/slow did not answer within 1 seconds; the operation may still be under way:'
                . ' check the service later or run the action again (it is safe to repeat).', $e->getMessage());
        }
    }

    public function testHttpsIsUsedWhenTheServerIsSecure(): void
    {
        // The stub speaks plain http: a TLS client fails the handshake.
        $params = $this->params(9008, 'record', ['serversecure' => 'on', 'serverhostname' => '127.0.0.1', 'serverport' => (string) self::$stub->port]);
        $result = geocatlive_CreateAccount($params);
        $this->assertStringStartsWith('GeoCat Live: secure connection to the bridge at https://127.0.0.1:' . self::$stub->port . ' failed (', $result);
        $this->assertSame([], $this->requests());
    }

    public function testTlsCertificatesAreVerified(): void
    {
        $tls = StubServer::selfSignedTls();
        try {
            $params = WhmcsParams::service(9009, $tls->url, self::TOKEN);
            $this->assertTrue($params['serversecure']);
            $result = geocatlive_CreateAccount($params);
            $this->assertStringStartsWith('GeoCat Live: secure connection to the bridge at ' . $tls->url . ' failed (SSL certificate problem: self-signed certificate)', $result);
            $this->assertStringContainsString('certificate for its host name from a CA this WHMCS server trusts', $result);
        } finally {
            $tls->stop();
        }
    }

    public function testCreateSendsTheDocumentedBodyForTheParamsService(): void
    {
        // Whatever the request says, the service id comes from $params.
        $_GET = $_POST = $_REQUEST = ['id' => '1', 'serviceid' => '1', 'modop' => 'custom', 'a' => 'Restart'];
        $params = $this->params(9010, 'record', ['domain' => 'maps.example.org', 'configoption3' => '999']);
        $this->assertSame('success', geocatlive_CreateAccount($params));
        $this->assertSame('success', geocatlive_Restart($params));

        list($create, $restart) = $this->requests();
        $this->assertSame('POST', $create['method']);
        $this->assertSame('/whmcs/v1/services/9010/create', $create['route']);
        $this->assertSame('Bearer ' . self::TOKEN, $create['authorization']);
        $this->assertSame('application/json', $create['content_type']);
        $this->assertMatchesRegularExpression('/^whmcs-[0-9a-f]{16}$/', $create['request_id']);
        $this->assertStringStartsWith('GeoCat-Live-WHMCS/', $create['user_agent']);
        $this->assertSame([
            'client' => ['id' => 42, 'email' => 'ada@example.org', 'firstname' => 'Ada', 'lastname' => 'Lovelace', 'companyname' => 'Analytical Maps Ltd'],
            'product' => 'busybox-demo',
            'plan' => 'small',
            'username' => 'rivermaps',
            'domain' => 'maps.example.org',
            'password' => WhmcsParams::SERVICE_PASSWORD,
            'wait' => 120,
        ], $create['body']);
        $this->assertSame('/whmcs/v1/services/9010/restart', $restart['route']);
        $this->assertSame(['wait' => 120], $restart['body']);
    }

    public function testEveryLifecycleCallSendsOnlyWhatTheBridgeAccepts(): void
    {
        $params = $this->params(9011, 'record', ['domain' => '', 'username' => '', 'configoption3' => '0', 'suspendreason' => 'Overdue on Payment',
            'configoptions' => ['Plan' => 'large']]);
        foreach (['CreateAccount', 'SuspendAccount', 'UnsuspendAccount', 'ChangePackage', 'ChangePassword', 'Redeploy', 'TerminateAccount'] as $function) {
            $this->assertSame('success', call_user_func('geocatlive_' . $function, $params), $function);
        }
        $sent = array_map(function ($request) {
            return [$request['route'], $request['body']];
        }, $this->requests());
        $client = ['id' => 42, 'email' => 'ada@example.org', 'firstname' => 'Ada', 'lastname' => 'Lovelace', 'companyname' => 'Analytical Maps Ltd'];
        $this->assertSame([
            ['/whmcs/v1/services/9011/create', ['client' => $client, 'product' => 'busybox-demo', 'plan' => 'large', 'username' => null, 'domain' => null, 'password' => WhmcsParams::SERVICE_PASSWORD, 'wait' => 0]],
            ['/whmcs/v1/services/9011/suspend', ['reason' => 'Overdue on Payment', 'wait' => 0]],
            ['/whmcs/v1/services/9011/unsuspend', ['wait' => 0]],
            ['/whmcs/v1/services/9011/change-package', ['plan' => 'large', 'product' => 'busybox-demo', 'wait' => 0]],
            ['/whmcs/v1/services/9011/change-password', ['password' => WhmcsParams::SERVICE_PASSWORD, 'wait' => 0]],
            ['/whmcs/v1/services/9011/redeploy', ['wait' => 0]],
            ['/whmcs/v1/services/9011/terminate', ['wait' => 0]],
        ], $sent);
    }

    public function testMissingProductSettingsNeverReachTheBridge(): void
    {
        $this->assertSame('GeoCat Live: the product has no Live product; choose one in its Module Settings.',
            geocatlive_CreateAccount($this->params(9012, 'record', ['configoption1' => ''])));
        $this->assertStringStartsWith('GeoCat Live: the product has no plan',
            geocatlive_ChangePackage($this->params(9012, 'record', ['configoption2' => ''])));
        $this->assertSame('GeoCat Live: client #42 has no email address; the bridge needs one.',
            geocatlive_CreateAccount($this->params(9012, 'record', ['clientsdetails' => ['firstname' => 'Ada']])));
        $this->assertSame([], $this->requests());
        $this->assertCount(3, WhmcsRecorder::$moduleLog, 'local failures are logged too');
    }

    public function testTheTokenComesFromTheAccessHashElseThePassword(): void
    {
        $this->assertSame('success', geocatlive_Restart($this->params(9013, 'record', ['serveraccesshash' => '', 'serverpassword' => 'live_frompass_x'])));
        $this->assertSame('Bearer live_frompass_x', $this->requests()[0]['authorization']);
        $this->assertStringContainsString('the server has no API key',
            geocatlive_Restart($this->params(9013, 'record', ['serveraccesshash' => '', 'serverpassword' => ''])));
        $this->assertStringContainsString('contains spaces or invalid characters',
            geocatlive_Restart($this->params(9013, 'record', ['serveraccesshash' => "live_a\r\nX-Evil: 1"])));
        $this->assertCount(1, $this->requests());
    }

    public function testEveryCallIsLoggedWithSecretsMasked(): void
    {
        $params = $this->params(9014, 'record');
        geocatlive_CreateAccount($params);
        geocatlive_ClientArea($params);
        geocatlive_AdminServicesTabFields($params);
        geocatlive_Restart($this->params(9014, 'unauthorized'));

        // The client area and the admin tab each read the service, then its backups.
        $this->assertSame(['CreateAccount', 'ClientArea', 'ClientArea', 'AdminServicesTabFields', 'AdminServicesTabFields', 'Restart'],
            array_column(WhmcsRecorder::$moduleLog, 'action'));
        foreach (WhmcsRecorder::$moduleLog as $entry) {
            $this->assertSame('geocatlive', $entry['module']);
            $this->assertContains(self::TOKEN, $entry['replaceVars']);
            $this->assertContains(WhmcsParams::SERVER_PASSWORD, $entry['replaceVars']);
            $this->assertContains(WhmcsParams::SERVICE_PASSWORD, $entry['replaceVars']);
            $this->assertStringNotContainsString(self::TOKEN, $entry['request'], 'the token is never even in the request string');
        }
        $this->assertContains('s3cr3t-db-pass', WhmcsRecorder::logOf('ClientArea')[0]['replaceVars']);
        $this->assertSame('********', WhmcsRecorder::logOf('ClientArea')[0]['processed']['secrets']['DB_PASSWORD']);
        $stored = WhmcsRecorder::storedLog();
        foreach ([self::TOKEN, WhmcsParams::SERVER_PASSWORD, WhmcsParams::SERVICE_PASSWORD, 's3cr3t-db-pass'] as $secret) {
            $this->assertStringNotContainsString($secret, $stored);
        }
        $this->assertStringContainsString('POST ' . self::$stub->url . '/record/whmcs/v1/services/9014/create', $stored);
    }

    public function testTheCustomerPasswordNeverReachesTheModuleLogWhateverItHolds(): void
    {
        // A " or \ is escaped in the JSON body (masking the raw value would miss it); a short value is not masked by
        // value at all. The bridge still gets the password as typed.
        foreach (['Pa"ss\\wo/rd-1', 'abc'] as $i => $password) {
            WhmcsRecorder::reset();
            $params = $this->params(9030 + $i, 'record', ['password' => $password]);
            $this->assertSame('success', geocatlive_CreateAccount($params));
            $this->assertSame('success', geocatlive_ChangePassword($params));
            $sent = array_slice($this->requests(), -2);
            $this->assertSame([$password, $password], array_column(array_column($sent, 'body'), 'password'));
            $stored = WhmcsRecorder::storedLog();
            $this->assertStringContainsString('"password":"********"', $stored);
            foreach ([$password, substr(json_encode($password), 1, -1)] as $form) {
                $this->assertStringNotContainsString('"password":"' . $form . '"', $stored, $password);
            }
            if (strlen($password) >= 4) {
                $this->assertStringNotContainsString(substr(json_encode($password), 1, -1), $stored);
            }
        }
    }

    public function testClientAreaViewIsPlainTextWithSafeLinks(): void
    {
        $area = geocatlive_ClientArea($this->params(9015, 'record'));
        $this->assertSame('templates/clientarea', $area['templatefile']);
        $live = $area['vars']['live'];
        $this->assertTrue($live['available']);
        $this->assertSame('pending', $live['status']);
        $this->assertSame('Being set up', $live['statusLabel']);
        $this->assertTrue($live['running']);
        $this->assertSame('wait for health: <db>', $live['operation']['step']);
        $this->assertSame('health check of <db> failed & retried', $live['lastError']);
        $this->assertSame([
            ['application' => 'geoserver', 'service' => 'web', 'url' => 'https://river-maps.geocat.live/geoserver'],
            ['application' => '<script>alert("app")</script>', 'service' => 'evil', 'url' => ''],
        ], $live['endpoints'], 'a javascript: URL is no link');
        $this->assertSame([['name' => 'DB_PASSWORD', 'value' => 's3cr3t-db-pass']], $live['credentials']);

        $missing = geocatlive_ClientArea($this->params(9015, 'missing'))['vars']['live'];
        $this->assertSame(['available' => false, 'notice' => 'This service is not set up yet.'], $missing);
    }

    public function testAdminTabEscapesEverything(): void
    {
        $tab = geocatlive_AdminServicesTabFields($this->params(9016, 'record'));
        $this->assertSame('river-maps (river-maps.geocat.live)', $tab['GeoCat Live instance']);
        $this->assertSame('Being set up: busybox-demo, plan small', $tab['GeoCat Live status']);
        $this->assertSame('r3', $tab['GeoCat Live revision']);
        $this->assertSame('geoserver: <a href="https://river-maps.geocat.live/geoserver" target="_blank" rel="noopener noreferrer">https://river-maps.geocat.live/geoserver</a>'
            . '<br>&lt;script&gt;alert(&quot;app&quot;)&lt;/script&gt;', $tab['GeoCat Live endpoints']);
        $this->assertSame('create running (attempt 1 of 5): wait for health: &lt;db&gt;', $tab['GeoCat Live operation']);
        $this->assertSame('health check of &lt;db&gt; failed &amp; retried', $tab['GeoCat Live last error']);
        $this->assertStringContainsString('<td>#1</td><td>create</td><td>failed</td><td>key:whmcs-stub</td>', $tab['GeoCat Live last operations']);
        $this->assertStringContainsString('image &lt;x&gt; is not available', $tab['GeoCat Live last operations']);
        $this->assertStringNotContainsString('<script', implode('', $tab));

        $this->assertSame(['GeoCat Live' => 'The bridge has no order for this service yet (the module&#039;s Create has not reached it).'],
            geocatlive_AdminServicesTabFields($this->params(9016, 'missing')));
    }

    public function testSingleSignOnIsNotSupportedAndSaysWhereToLogIn(): void
    {
        $this->assertSame([
            'success' => false,
            'errorMsg' => 'Single sign-on is not supported by GeoCat Live products yet: log in at https://river-maps.geocat.live/geoserver with the credentials shown in the client area.',
        ], geocatlive_ServiceSingleSignOn($this->params(9017, 'record')));
        $this->assertSame('Single sign-on is not supported by GeoCat Live products yet: log in at the service\'s address with the credentials shown in the client area.',
            geocatlive_ServiceSingleSignOn($this->params(9017, 'missing'))['errorMsg']);
    }

    public function testUsageUpdateWritesTheServersServicesInMegabytesFromOneRequest(): void
    {
        Capsule::$tables['tblhosting'] = [
            ['id' => 9101, 'server' => WhmcsParams::SERVER_ID, 'diskusage' => 0, 'disklimit' => 0, 'bwusage' => 0, 'bwlimit' => 0, 'lastupdate' => '0000-00-00 00:00:00'],
            ['id' => 9102, 'server' => WhmcsParams::SERVER_ID, 'diskusage' => 7, 'disklimit' => 0, 'bwusage' => 0, 'bwlimit' => 0, 'lastupdate' => '0000-00-00 00:00:00'],
            ['id' => 9103, 'server' => 99, 'diskusage' => 1, 'disklimit' => 0, 'bwusage' => 0, 'bwlimit' => 0, 'lastupdate' => '0000-00-00 00:00:00'],
            ['id' => 9104, 'server' => WhmcsParams::SERVER_ID, 'diskusage' => 4, 'disklimit' => 0, 'bwusage' => 0, 'bwlimit' => 0, 'lastupdate' => '0000-00-00 00:00:00'],
        ];
        $params = WhmcsParams::server(self::$stub->url . '/record', self::TOKEN) + ['serverid' => WhmcsParams::SERVER_ID];
        $this->assertSame('success', geocatlive_UsageUpdate($params));

        $this->assertSame([['GET', '/whmcs/v1/usage']], array_map(function ($r) {
            return [$r['method'], $r['route']];
        }, $this->requests()), 'one request for all services');
        $updates = Capsule::calls('tblhosting', 'update');
        $this->assertCount(3, $updates);
        $this->assertSame([['id', '=', 9101], ['server', '=', WhmcsParams::SERVER_ID]], $updates[0]['wheres']);
        $this->assertSame(['diskusage', 'disklimit', 'bwusage', 'bwlimit', 'lastupdate'], array_keys($updates[0]['values']));
        list($first, $second, $other, $unmeasured) = Capsule::$tables['tblhosting'];
        $this->assertSame(13, $first['diskusage'], '12.3 MB, rounded up');
        $this->assertSame(0, $second['diskusage']);
        $this->assertSame(0, $first['disklimit'], 'no quota: unlimited');
        $this->assertMatchesRegularExpression('/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/', $first['lastupdate']);
        $this->assertLessThan(5, abs(strtotime($first['lastupdate']) - time()));
        $this->assertSame(1, $other['diskusage'], 'a service of another server is left alone');
        $this->assertSame('0000-00-00 00:00:00', $other['lastupdate']);
        $this->assertSame([4, '0000-00-00 00:00:00'], [$unmeasured['diskusage'], $unmeasured['lastupdate']],
            'a service the bridge has not measured yet (disk_mb null) keeps what WHMCS has');
    }

    public function testTestConnection(): void
    {
        // Issue 9, item 8: the bridge on the WHMCS host over plain http is a normal set-up.
        $result = geocatlive_TestConnection($this->params(0, 'record'));
        $this->assertSame(['success' => true, 'error' => ''], $result, 'plain http to 127.0.0.1 never leaves the host');
        $this->assertSame(['POST', '/whmcs/v1/test-connection'], [$this->requests()[0]['method'], $this->requests()[0]['route']]);
        $remark = WhmcsRecorder::logOf('TestConnection');
        $this->assertCount(2, $remark, 'the exchange, then the remark');
        $this->assertSame('POST ' . self::$stub->url . '/record/whmcs/v1/test-connection', $remark[1]['request']);
        $this->assertSame('GeoCat Live: connected to the bridge at ' . self::$stub->url . '/record with key "whmcs-stub" (2 products) over plain http'
            . ' to a loopback address: the traffic, API key included, stays on this host. Use https and tick "Secure" if the bridge moves to another host.',
            $remark[1]['response']);
        $this->assertContains(self::TOKEN, $remark[1]['replaceVars'], 'the key is masked');
        $this->assertContains(WhmcsParams::SERVER_PASSWORD, $remark[1]['replaceVars']);

        $docker = geocatlive_TestConnection($this->params(0, 'docker-down'));
        $this->assertFalse($docker['success']);
        $this->assertStringContainsString('its Docker engine is unreachable', $docker['error']);
        $this->assertStringContainsString('rejected the API key', geocatlive_TestConnection($this->params(0, 'unauthorized'))['error']);
    }

    public function testLoadersFillTheDropdownsFromTheBridge(): void
    {
        $params = $this->params(0, 'record');
        $this->assertSame(['busybox-demo' => 'Busybox demo stack (busybox-demo)', 'geoserver-postgis' => 'GeoServer + PostGIS (geoserver-postgis)'],
            geocatlive_LoadProducts($params), 'valid products only');
        $this->assertSame(['large' => 'large (busybox-demo, geoserver-postgis)', 'medium' => 'medium (geoserver-postgis)', 'small' => 'small (busybox-demo, geoserver-postgis)'],
            geocatlive_LoadPlans(array_merge($params, ['configoption1' => ''])));
        $this->assertSame(['large' => 'large (busybox-demo)', 'small' => 'small (busybox-demo)'], geocatlive_LoadPlans($params));

        $this->expectException(\Exception::class);
        $this->expectExceptionMessage('rejected the API key');
        geocatlive_LoadProducts($this->params(0, 'unauthorized'));
    }

    public function testTheDailyHookWritesOneActivityLinePerFailure(): void
    {
        $stub = parse_url(self::$stub->url);
        $closed = StubServer::freePort();
        Capsule::$tables['tblservers'] = [
            ['id' => 1, 'name' => 'Live EU', 'type' => 'geocatlive', 'disabled' => 0, 'hostname' => '127.0.0.1/record', 'ipaddress' => '',
                'port' => (string) $stub['port'], 'secure' => '', 'accesshash' => self::TOKEN, 'password' => ''],
            ['id' => 2, 'name' => 'Live EU again', 'type' => 'geocatlive', 'disabled' => 0, 'hostname' => '127.0.0.1/record', 'ipaddress' => '',
                'port' => (string) $stub['port'], 'secure' => '', 'accesshash' => self::TOKEN, 'password' => ''],
            ['id' => 3, 'name' => 'Live down', 'type' => 'geocatlive', 'disabled' => 0, 'hostname' => '', 'ipaddress' => '127.0.0.1',
                'port' => (string) $closed, 'secure' => '', 'accesshash' => '', 'password' => self::TOKEN],
            ['id' => 4, 'name' => 'Live off', 'type' => 'geocatlive', 'disabled' => 1, 'hostname' => '127.0.0.1', 'ipaddress' => '',
                'port' => '1', 'secure' => '', 'accesshash' => self::TOKEN, 'password' => ''],
            ['id' => 5, 'name' => 'cPanel', 'type' => 'cpanel', 'disabled' => 0, 'hostname' => '127.0.0.1', 'ipaddress' => '',
                'port' => '1', 'secure' => '', 'accesshash' => 'x', 'password' => ''],
        ];
        WhmcsRecorder::runHook('DailyCronJob', []);

        $this->assertCount(2, WhmcsRecorder::$activity);
        $this->assertSame('GeoCat Live: create of service #9201 failed: image live-test/no-such-image:1 is not available (instance river-maps, 2026-01-02T03:04:05Z)',
            WhmcsRecorder::$activity[0]);
        $this->assertStringStartsWith('GeoCat Live: could not check server Live down for failed provisioning: GeoCat Live: the bridge cannot be reached at http://127.0.0.1:' . $closed . ' (',
            WhmcsRecorder::$activity[1]);
        $requests = $this->requests();
        $this->assertCount(1, $requests, 'servers with the same bridge are asked once');
        $this->assertSame('/whmcs/v1/failures', $requests[0]['route']);
        parse_str($requests[0]['query'], $query);
        $this->assertLessThan(60, abs(strtotime($query['since']) - (time() - 86400)), 'the last 24 hours');
        $this->assertMatchesRegularExpression('/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/', $query['since']);
    }

    public function testTheDailyHookNeverThrows(): void
    {
        Capsule::$tables['tblservers'] = [['id' => 1, 'type' => 'geocatlive', 'disabled' => 0]];
        WhmcsRecorder::runHook('DailyCronJob', []);
        $this->assertSame(['GeoCat Live: could not check server #1 for failed provisioning: GeoCat Live: the server has no hostname or IP address:'
            . ' set the bridge\'s address on the WHMCS server (System Settings > Servers).'], WhmcsRecorder::$activity);
    }

    public static function serverSettings(): array
    {
        return [
            'hostname, port' => [['serverhostname' => 'bridge.example.org', 'serverport' => '8000', 'serversecure' => false], 'http://bridge.example.org:8000'],
            'secure, default port' => [['serverhostname' => 'bridge.example.org', 'serverport' => '', 'serversecure' => 'on'], 'https://bridge.example.org'],
            'secure 443' => [['serverhostname' => 'bridge.example.org', 'serverport' => '443', 'serversecure' => true], 'https://bridge.example.org'],
            'secure other port' => [['serverhostname' => 'bridge.example.org', 'serverport' => '8443', 'serversecure' => '1'], 'https://bridge.example.org:8443'],
            'ip only' => [['serverhostname' => '', 'serverip' => '10.0.0.5', 'serverport' => '', 'serversecure' => ''], 'http://10.0.0.5:8000'],
            'ipv6' => [['serverip' => '2001:db8::5', 'serverport' => '8000'], 'http://[2001:db8::5]:8000'],
            'path prefix, https:// agreeing with Secure' => [['serverhostname' => 'https://proxy.example.org/live/', 'serversecure' => 'on'], 'https://proxy.example.org/live'],
            'http 80' => [['serverhostname' => 'bridge.internal', 'serverport' => '80'], 'http://bridge.internal'],
        ];
    }

    /**
     * @dataProvider serverSettings
     */
    public function testTheBridgeUrlComesFromTheServerSettings(array $server, string $expected): void
    {
        $this->assertSame($expected, BridgeClient::baseUrlFromServerParams($server));
    }

    public function testAHostnameWithAPortIsRefused(): void
    {
        $this->expectException(BridgeException::class);
        $this->expectExceptionMessage('the port has its own field');
        BridgeClient::baseUrlFromServerParams(['serverhostname' => 'bridge.example.org:8000']);
    }

    // -- Issue 9, item 10: what admins type into the server settings --------------

    /** Every module function WHMCS calls with a service's params, and what it answered. */
    private function callEverything(array $params): array
    {
        $answers = [];
        foreach (['CreateAccount', 'SuspendAccount', 'UnsuspendAccount', 'TerminateAccount', 'ChangePackage', 'Restart', 'Redeploy', 'UsageUpdate'] as $function) {
            $answers[$function] = call_user_func('geocatlive_' . $function, $params);
        }
        $answers['TestConnection'] = geocatlive_TestConnection($params)['error'];
        $answers['AdminServicesTabFields'] = html_entity_decode(geocatlive_AdminServicesTabFields($params)['GeoCat Live'], ENT_QUOTES);
        foreach (['LoadProducts', 'LoadPlans'] as $loader) {
            try {
                call_user_func('geocatlive_' . $loader, $params);
                $answers[$loader] = 'no exception';
            } catch (\Exception $e) {
                $answers[$loader] = $e->getMessage();
            }
        }
        return $answers;
    }

    public function testAnHttpsHostnameIsNeverDowngradedWhenSecureIsNotTicked(): void
    {
        // The example: serverhostname https://bridge.example, "Secure" not ticked (WHMCS then sends port 8000, prefix http).
        $example = ['serverhostname' => 'https://bridge.example', 'serverip' => '', 'serversecure' => false, 'serverhttpprefix' => 'http', 'serverport' => '8000'];
        $expected = 'GeoCat Live: the server\'s Hostname "https://bridge.example" says https, but the server\'s "Secure" box is not ticked; nothing was sent'
            . ' (the API key never goes over plain http to an address written with https://). Tick "Secure" on the server (System Settings > Servers)'
            . ' and check its Port (443, or the bridge\'s https port).';
        $this->assertSame($expected, geocatlive_CreateAccount($this->params(9301, 'record', $example)));

        // The same against a listening plain-http bridge: nothing at all reaches it, from any function.
        $stub = ['serverhostname' => 'https://127.0.0.1/record', 'serverip' => '127.0.0.1', 'serversecure' => '', 'serverhttpprefix' => 'http',
            'serverport' => (string) self::$stub->port];
        $params = $this->params(9301, 'record', $stub);
        foreach ($this->callEverything($params) as $function => $answer) {
            $this->assertStringStartsWith('GeoCat Live: the server\'s Hostname "https://127.0.0.1/record" says https, but the server\'s "Secure" box is not ticked;', $answer, $function);
        }
        $this->assertSame('The service details are not available right now; please try again in a few minutes.', geocatlive_ClientArea($params)['vars']['live']['notice']);
        $this->assertSame([], $this->requests(), 'the API key was not sent over plain http');
        $this->assertSame('(not sent)', WhmcsRecorder::logOf('CreateAccount')[0]['request'], 'the refusal is in the module log');
        $this->assertContains(self::TOKEN, WhmcsRecorder::logOf('CreateAccount')[0]['replaceVars']);
    }

    public function testAnHttpHostnameWithSecureTickedIsRefusedAndOneThatAgreesWorks(): void
    {
        $server = ['serverhostname' => 'http://127.0.0.1/record', 'serverport' => (string) self::$stub->port];
        $refused = geocatlive_CreateAccount($this->params(9302, 'record', $server + ['serversecure' => 'on', 'serverhttpprefix' => 'https']));
        $this->assertStringStartsWith('GeoCat Live: the server\'s Hostname "http://127.0.0.1/record" says plain http, but the server\'s "Secure" box is ticked; nothing was sent.', $refused);
        $this->assertSame([], $this->requests());

        $this->assertSame('success', geocatlive_CreateAccount($this->params(9302, 'record', $server + ['serversecure' => '', 'serverhttpprefix' => 'http'])));
        $this->assertSame('/whmcs/v1/services/9302/create', $this->requests()[0]['route']);
    }

    // -- Issue 9, item 8: plain http to the WHMCS host itself -----------------------

    /** Server params for $host:8000 (over plain http), and curl routed from there to the stub. */
    private function routedToStub(string $field, string $host): array
    {
        $params = WhmcsParams::service(0, self::$stub->url, self::TOKEN, [
            'serverhostname' => $field === 'serverhostname' ? $host . '/record' : '', 'serverip' => $field === 'serverip' ? $host : '',
            'serverport' => '8000', 'serversecure' => '', 'serverhttpprefix' => 'http']);
        $target = strpos($host, ':') !== false && $host[0] !== '[' ? '[' . $host . ']' : $host;
        return [$params, ['connect_to' => [$target . ':8000:127.0.0.1:' . self::$stub->port]]];
    }

    public static function loopbackAddresses(): array
    {
        return [
            '127.0.0.1' => ['serverhostname', '127.0.0.1'], '127.1.2.3' => ['serverhostname', '127.1.2.3'], '[::1]' => ['serverhostname', '[::1]'],
            '::1 in the IP Address field' => ['serverip', '::1'], 'localhost' => ['serverhostname', 'localhost'], 'LOCALHOST' => ['serverhostname', 'LOCALHOST'],
        ];
    }

    /**
     * @dataProvider loopbackAddresses
     */
    public function testTestConnectionOverPlainHttpToALoopbackAddressSucceeds(string $field, string $host): void
    {
        list($params, $options) = $this->routedToStub($field, $host);
        $client = BridgeClient::fromServerParams($params, BridgeClient::moduleLogger('TestConnection'), $options);
        $this->assertFalse($client->isSecure());
        $this->assertSame(['success' => true, 'error' => ''], geocatlive_testConnectionWith($client, $params));
        $this->assertCount(1, $this->requests(), 'a real exchange with the bridge');
        $log = WhmcsRecorder::logOf('TestConnection');
        $this->assertCount(2, $log);
        $this->assertStringContainsString('over plain http to a loopback address: the traffic, API key included, stays on this host.', $log[1]['response']);
        $this->assertStringContainsString('connected to the bridge at ' . $client->baseUrl() . ' with key "whmcs-stub"', $log[1]['response']);
        $this->assertContains(self::TOKEN, $log[1]['replaceVars']);
    }

    public function testTestConnectionToLocalhostNeedsNoRouting(): void
    {
        $params = $this->params(0, 'record', ['serverhostname' => 'localhost/record', 'serverip' => '']);
        $this->assertSame(['success' => true, 'error' => ''], geocatlive_TestConnection($params));
    }

    public static function otherAddresses(): array
    {
        return ['10.0.0.5' => ['serverip', '10.0.0.5'], 'bridge.example' => ['serverhostname', 'bridge.example'], '192.168.1.20' => ['serverhostname', '192.168.1.20'],
            '[2001:db8::5]' => ['serverhostname', '[2001:db8::5]']];
    }

    /**
     * @dataProvider otherAddresses
     */
    public function testTestConnectionOverPlainHttpToAnyOtherAddressFails(string $field, string $host): void
    {
        list($params, $options) = $this->routedToStub($field, $host);
        $client = BridgeClient::fromServerParams($params, BridgeClient::moduleLogger('TestConnection'), $options);
        $this->assertSame(['success' => false, 'error' => 'GeoCat Live warning: connected to the bridge at ' . $client->baseUrl() . ' with key "whmcs-stub" (2 products),'
            . ' but over plain http: the API key travels unencrypted. Serve the bridge over https and tick "Secure".'],
            geocatlive_testConnectionWith($client, $params));
        $this->assertCount(1, $this->requests());
        $this->assertCount(1, WhmcsRecorder::logOf('TestConnection'), 'no loopback remark');
    }

    public function testLifecycleCallsOverPlainHttpToAPrivateAddressAreStillSent(): void
    {
        // The documented rule (docs/WHMCS.md, section 2): only Test Connection refuses plain http to
        // another host; the lifecycle calls keep working for a bridge on a private network.
        list($params, $options) = $this->routedToStub('serverip', '10.0.0.5');
        $client = BridgeClient::fromServerParams($params, null, $options);
        $this->assertSame('http://10.0.0.5:8000', $client->baseUrl());
        $this->assertSame('queued', $client->post('/whmcs/v1/services/9303/restart', ['wait' => 0])['result']);
        $this->assertSame('/whmcs/v1/services/9303/restart', $this->requests()[0]['route']);
    }

    public function testAProxyFromTheEnvironmentIsNotUsedForTheBridgeOnThisHost(): void
    {
        $before = getenv('http_proxy');
        putenv('http_proxy=http://127.0.0.1:' . StubServer::freePort());
        try {
            $this->assertSame('success', geocatlive_Restart($this->params(9304, 'record')));
        } finally {
            putenv($before === false ? 'http_proxy' : 'http_proxy=' . $before);
        }
        $this->assertCount(1, $this->requests());
    }

    // -- Issue 9, item 10: "no order yet" only when the bridge says so ---------------

    public function testNoOrderYetOnlyWhenTheBridgeSaysOrderNotFound(): void
    {
        $params = $this->params(9305, 'missing');
        $this->assertSame(['GeoCat Live' => 'The bridge has no order for this service yet (the module&#039;s Create has not reached it).'],
            geocatlive_AdminServicesTabFields($params));
        $this->assertSame('This service is not set up yet.', geocatlive_ClientArea($params)['vars']['live']['notice']);
        $this->assertSame('GeoCat Live: no order for WHMCS service 9305 (HTTP 404).', geocatlive_SuspendAccount($params));
        try {
            BridgeClient::fromServerParams($params)->get('/whmcs/v1/services/9305');
            $this->fail('404');
        } catch (BridgeException $e) {
            $this->assertTrue($e->isOrderNotFound());
            $this->assertFalse($e->isNotTheBridge());
            $this->assertSame('order_not_found', $e->getErrorCode());
        }
    }

    public function testAWrongPathIsNotTheBridgeAndNamesTheUrl(): void
    {
        // The example: serverhostname 127.0.0.1/live, where the bridge answers an unknown route with 404 not_found.
        $params = $this->params(9306, 'live');
        $url = self::$stub->url . '/live/whmcs/v1/services/9306';
        $expected = 'GeoCat Live: ' . $url . ' is not the GeoCat Live Bridge\'s WHMCS API (GET got HTTP 404 not_found: "no such stub mode: live"):'
            . ' check the server\'s Hostname (with the bridge\'s path prefix, if it has one), Port and "Secure" tick in System Settings > Servers.';
        $this->assertSame(['GeoCat Live' => htmlspecialchars($expected, ENT_QUOTES)], geocatlive_AdminServicesTabFields($params), 'the admin tab names the URL');
        $notice = geocatlive_ClientArea($params)['vars']['live']['notice'];
        $this->assertSame('The service details are not available right now; please try again in a few minutes.', $notice, 'the client sees no URL');
        $this->assertStringStartsWith('GeoCat Live: ' . $url . '/create is not the GeoCat Live Bridge\'s WHMCS API (POST got HTTP 404 not_found', geocatlive_CreateAccount($params));
        $this->assertStringStartsWith('GeoCat Live: ' . self::$stub->url . '/live/whmcs/v1/test-connection is not the', geocatlive_TestConnection($params)['error']);
        $this->assertStringContainsString($url . ' is not the', WhmcsRecorder::storedLog(), 'the module log has the URL too');
    }

    public static function answersThatAreNotTheBridge(): array
    {
        return [
            '404 not_found (unknown route)' => ['live', 404, 'HTTP 404 not_found: "no such stub mode: live"'],
            '404 HTML' => ['html-404', 404, 'HTTP 404, not JSON: "404 Not Found 404 Not Found nginx"'],
            '404 JSON of another API' => ['json-404', 404, 'HTTP 404, JSON without the bridge\'s error object: "{"detail":"Not Found"}"'],
            '302 to a login page' => ['found', 302, 'a redirect (HTTP 302 to /login?next=%2Fwhmcs%2Fv1%2Fservices%2F9307)'],
            '200 HTML' => ['invalid-json', 200, 'HTTP 200, not JSON: "Welcome to nginx!"'],
        ];
    }

    /**
     * @dataProvider answersThatAreNotTheBridge
     */
    public function testAnswersThatAreNotTheBridgeNameTheUrlAndAreNeverNoOrderYet(string $mode, int $status, string $detail): void
    {
        $params = $this->params(9307, $mode);
        $url = self::$stub->url . '/' . $mode . '/whmcs/v1/services/9307';
        try {
            BridgeClient::fromServerParams($params)->get('/whmcs/v1/services/9307');
            $this->fail('not the bridge');
        } catch (BridgeException $e) {
            $this->assertSame('GeoCat Live: ' . $url . ' is not the GeoCat Live Bridge\'s WHMCS API (GET got ' . $detail . '): check the server\'s Hostname'
                . ' (with the bridge\'s path prefix, if it has one), Port and "Secure" tick in System Settings > Servers.', $e->getMessage());
            $this->assertSame($status, $e->getHttpStatus());
            $this->assertTrue($e->isNotTheBridge());
            $this->assertFalse($e->isOrderNotFound());
        }
        $tab = html_entity_decode(geocatlive_AdminServicesTabFields($params)['GeoCat Live'], ENT_QUOTES);
        $this->assertStringStartsWith('GeoCat Live: ' . $url . ' is not the GeoCat Live Bridge\'s WHMCS API', $tab);
        $this->assertStringNotContainsString('no order', $tab);
        $this->assertSame(['available' => false, 'notice' => 'The service details are not available right now; please try again in a few minutes.'],
            geocatlive_ClientArea($params)['vars']['live']);
    }

    // -- Issue 9, item 10: plan, product and domain as WHMCS has them ---------------

    public function testAnUnknownPlanIsRefusedWithTheValueAndTheValidPlans(): void
    {
        // The example: the configurable option Plan is "Gold".
        $result = geocatlive_CreateAccount($this->params(9308, 'validating', ['configoptions' => ['Plan' => 'Gold']]));
        $this->assertSame("GeoCat Live: product busybox-demo has no plan 'Gold' (plans: large, small) (HTTP 422).", $result);
        $this->assertSame('Gold', $this->requests()[0]['body']['plan']);
    }

    public function testPlanAndProductAreSentTrimmedAndMatchedByTheBridgeWithoutRegardToCase(): void
    {
        $params = $this->params(9309, 'validating', ['configoption1' => ' busybox-demo ', 'configoptions' => ['Plan' => " LARGE 	"]]);
        $this->assertSame('success', geocatlive_CreateAccount($params));
        $this->assertSame('success', geocatlive_ChangePackage(array_replace($params, ['configoption2' => 'large', 'configoptions' => ['plan' => 'small|Small, 1 worker']])));
        list($create, $change) = $this->requests();
        $this->assertSame(['busybox-demo', 'LARGE'], [$create['body']['product'], $create['body']['plan']]);
        $this->assertSame(['busybox-demo', 'small'], [$change['body']['product'], $change['body']['plan']]);
    }

    public function testAnIpAddressAsDomainIsSentAndTheBridgesRefusalIsShown(): void
    {
        // The example: domain 192.0.2.10. The module sends it as WHMCS has it; the bridge refuses it.
        $result = geocatlive_CreateAccount($this->params(9310, 'validating', ['domain' => ' 192.0.2.10 ']));
        $this->assertSame("GeoCat Live: domain '192.0.2.10' is an IP address; a customer domain must be a DNS name; leave the domain empty"
            . ' to use the generated <instance>.<base domain> (HTTP 422).', $result);
        $this->assertSame('192.0.2.10', $this->requests()[0]['body']['domain']);
    }

    public function testChangePackageSendsTheDomainWhenTheServiceHasOne(): void
    {
        $this->assertSame('success', geocatlive_ChangePackage($this->params(9311, 'record', ['domain' => ' maps.example.org '])));
        $this->assertSame('success', geocatlive_ChangePackage($this->params(9311, 'record', ['domain' => '  '])));
        list($with, $without) = $this->requests();
        $this->assertSame(['plan' => 'small', 'product' => 'busybox-demo', 'wait' => 60, 'domain' => 'maps.example.org'], $with['body']);
        $this->assertSame(['plan' => 'small', 'product' => 'busybox-demo', 'wait' => 60], $without['body']);
    }
}
