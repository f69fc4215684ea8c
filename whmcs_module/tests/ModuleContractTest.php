<?php
/**
 * The WHMCS module contract (as in WHMCS's sample module test): every function
 * exists where WHMCS expects it, answers empty $params with the right type and
 * never throws; settings, buttons and helpers behave as documented.
 */

use PHPUnit\Framework\TestCase;
use WHMCS\Database\Capsule;

final class ModuleContractTest extends TestCase
{
    protected function setUp(): void
    {
        WhmcsRecorder::reset();
        Capsule::reset();
    }

    public function testConfigOptionsFunctionExists(): void
    {
        $this->assertTrue(function_exists('geocatlive_ConfigOptions'));
    }

    public static function functionsAndTheirReturnTypes(): array
    {
        return [
            'MetaData' => ['MetaData', 'array'],
            'ConfigOptions' => ['ConfigOptions', 'array'],
            'CreateAccount' => ['CreateAccount', 'string'],
            'SuspendAccount' => ['SuspendAccount', 'string'],
            'UnsuspendAccount' => ['UnsuspendAccount', 'string'],
            'TerminateAccount' => ['TerminateAccount', 'string'],
            'ChangePackage' => ['ChangePackage', 'string'],
            'ChangePassword' => ['ChangePassword', 'string'],
            'TestConnection' => ['TestConnection', 'array'],
            'AdminCustomButtonArray' => ['AdminCustomButtonArray', 'array'],
            'ClientAreaCustomButtonArray' => ['ClientAreaCustomButtonArray', 'array'],
            'Restart' => ['Restart', 'string'],
            'Redeploy' => ['Redeploy', 'string'],
            'BackUpNow' => ['BackUpNow', 'string'],
            'RestoreBackup' => ['RestoreBackup', 'string'],
            'ClientAreaAllowedFunctions' => ['ClientAreaAllowedFunctions', 'array'],
            'AdminServicesTabFields' => ['AdminServicesTabFields', 'array'],
            'AdminServicesTabFieldsSave' => ['AdminServicesTabFieldsSave', 'NULL'],
            'ServiceSingleSignOn' => ['ServiceSingleSignOn', 'array'],
            'ClientArea' => ['ClientArea', 'array'],
            'UsageUpdate' => ['UsageUpdate', 'string'],
            'ListAccounts' => ['ListAccounts', 'array'],
            'Logs' => ['Logs', 'array'],
            'MetricProvider' => ['MetricProvider', 'object'],
        ];
    }

    /**
     * @dataProvider functionsAndTheirReturnTypes
     */
    public function testEveryFunctionAnswersEmptyParamsWithTheRightType(string $function, string $type): void
    {
        $name = 'geocatlive_' . $function;
        $this->assertTrue(function_exists($name), $name . ' is defined');
        $result = call_user_func($name, []);
        $this->assertSame($type, gettype($result), $name . '([]) returns ' . $type);
        if ($type === 'string') {
            $this->assertNotSame('success', $result);
            $this->assertStringStartsWith('GeoCat Live: ', $result);
            $this->assertStringNotContainsString('#0 ', $result, 'no stack trace');
        }
    }

    public function testEmptyParamsGiveMessagesStaffCanActOn(): void
    {
        $this->assertSame('GeoCat Live: no WHMCS service id in the module parameters.', geocatlive_CreateAccount([]));
        $this->assertStringContainsString('no hostname or IP address', geocatlive_TestConnection([])['error']);
        $this->assertFalse(geocatlive_TestConnection([])['success']);
        $this->assertSame(['live' => ['available' => false, 'notice' => 'The service details are not available right now; please try again in a few minutes.']],
            geocatlive_ClientArea([])['vars']);
        $this->assertSame('templates/clientarea', geocatlive_ClientArea([])['templatefile']);
        $this->assertFalse(geocatlive_ServiceSingleSignOn([])['success']);
        $this->assertStringContainsString('not supported', geocatlive_ServiceSingleSignOn([])['errorMsg']);
        $this->assertSame('GeoCat Live: usage update without a server id.', geocatlive_UsageUpdate([]));
        $this->assertSame([], Capsule::$calls, 'nothing written without a server');
    }

    public function testLoadersThrowAReadableExceptionAsWhmcsExpects(): void
    {
        foreach (['geocatlive_LoadProducts', 'geocatlive_LoadPlans'] as $loader) {
            try {
                call_user_func($loader, []);
                $this->fail($loader . ' must throw without a server');
            } catch (\Exception $e) {
                $this->assertStringContainsString('the server has no hostname or IP address', $e->getMessage());
            }
        }
    }

    public function testMetaData(): void
    {
        $meta = geocatlive_MetaData();
        $this->assertSame('GeoCat Live', $meta['DisplayName']);
        $this->assertSame('1.1', $meta['APIVersion']);
        $this->assertTrue($meta['RequiresServer']);
        $this->assertSame('8000', $meta['DefaultNonSSLPort']);
        $this->assertSame('443', $meta['DefaultSSLPort']);
    }

    public function testConfigOptionsAreProductPlanWaitAndClientRestoresInThatOrder(): void
    {
        $options = geocatlive_ConfigOptions();
        // Only ever appended: WHMCS stores them as configoption1..N.
        $this->assertSame(['Live product', 'Plan', 'Wait (seconds)', 'Clients may restore backups'], array_keys($options));
        $this->assertLessThanOrEqual(24, count($options));
        $this->assertSame('geocatlive_LoadProducts', $options['Live product']['Loader']);
        $this->assertSame('geocatlive_LoadPlans', $options['Plan']['Loader']);
        foreach ($options as $option) {
            $this->assertContains($option['Type'], ['text', 'password', 'yesno', 'dropdown', 'radio', 'textarea']);
            if (isset($option['Loader'])) {
                $this->assertTrue(function_exists($option['Loader']));
            }
        }
        $this->assertSame('60', $options['Wait (seconds)']['Default']);
        $this->assertSame('yesno', $options['Clients may restore backups']['Type']);
        $this->assertArrayNotHasKey('Default', $options['Clients may restore backups'], 'off unless staff tick it');
    }

    public static function clientRestoreSettings(): array
    {
        return [['on', true], ['1', true], ['yes', true], [true, true], ['', false], ['0', false], ['off', false], [null, false], [false, false]];
    }

    /**
     * @dataProvider clientRestoreSettings
     */
    public function testClientsMayRestoreOnlyWhenTheSettingIsTicked($value, bool $expected): void
    {
        $this->assertSame($expected, geocatlive_clientsMayRestore(['configoption4' => $value]));
        $this->assertFalse(geocatlive_clientsMayRestore([]));
    }

    public function testButtonsAndOnlyAdminsMayRedeploy(): void
    {
        $this->assertSame(['Restart' => 'Restart', 'Redeploy' => 'Redeploy', 'Back up now' => 'BackUpNow'], geocatlive_AdminCustomButtonArray());
        $this->assertSame(['Restart' => 'Restart', 'Back up now' => 'BackUpNow', 'Logs' => 'Logs'], geocatlive_ClientAreaCustomButtonArray());
        // RestoreBackup has no button (it needs a backup id: the Backups section posts it) and checks the product's setting itself.
        $this->assertSame(['Restore a backup' => 'RestoreBackup', 'Logs' => 'Logs'], geocatlive_ClientAreaAllowedFunctions());
        foreach (array_merge(geocatlive_AdminCustomButtonArray(), geocatlive_ClientAreaCustomButtonArray(), geocatlive_ClientAreaAllowedFunctions()) as $suffix) {
            $this->assertTrue(function_exists('geocatlive_' . $suffix));
        }
    }

    /**
     * @runInSeparateProcess
     * @preserveGlobalState disabled
     */
    public function testClientsCannotRedeployEvenByCallingTheFunction(): void
    {
        define('CLIENTAREA', true);
        $this->assertSame('GeoCat Live: Redeploy is for staff only.', geocatlive_Redeploy(['serviceid' => 9001]));
        $this->assertSame([], WhmcsRecorder::$moduleLog);
    }

    public static function waits(): array
    {
        return [['60', 60], ['0', 0], ['', 0], [null, 0], ['-5', 0], ['121', 120], ['999', 120], ['abc', 0], ['30.4', 30], [45, 45]];
    }

    /**
     * @dataProvider waits
     */
    public function testWaitIsClampedToWhatTheBridgeAccepts($configured, int $expected): void
    {
        $this->assertSame($expected, geocatlive_waitSeconds(['configoption3' => $configured]));
    }

    public function testConfigurableOptionPlanOverridesTheProductsPlan(): void
    {
        $this->assertSame('small', geocatlive_planName(['configoption2' => 'small']));
        $this->assertSame('large', geocatlive_planName(['configoption2' => 'small', 'configoptions' => ['Plan' => 'large']]));
        $this->assertSame('small', geocatlive_planName(['configoption2' => 'small', 'configoptions' => ['Plan' => '', 'Disk' => '10']]));
    }

    public static function lifecycleAnswers(): array
    {
        return [
            'succeeded' => [['result' => 'succeeded', 'message' => 'create succeeded'], 'success'],
            'queued, worker alive' => [['result' => 'queued', 'message' => 'order acme accepted', 'worker' => ['alive' => true, 'heartbeat_age_seconds' => 0.4]],
                'success'],
            'running, worker alive' => [['result' => 'running', 'message' => 'create still running: create db', 'worker' => ['alive' => true, 'heartbeat_age_seconds' => 1.2]],
                'success'],
            // Bridges before the worker heartbeat: no worker object, "accepted" for queued; as before, a success.
            'accepted (older bridge)' => [['result' => 'accepted', 'message' => 'create queued'], 'success'],
            'running (older bridge)' => [['result' => 'running', 'message' => 'create still running: create db'], 'success'],
            'unchanged' => [['result' => 'unchanged', 'message' => 'order already suspended'], 'success'],
            'failed' => [['result' => 'failed', 'message' => 'image x:1 is not available', 'operation' => ['kind' => 'create']],
                'GeoCat Live: create failed: image x:1 is not available'],
            'failed without reason' => [['result' => 'failed', 'message' => 'suspend failed', 'operation' => ['kind' => 'suspend']],
                'GeoCat Live: suspend failed.'],
            'unknown' => [['result' => 'maybe'], 'GeoCat Live: unexpected answer from the bridge (result "maybe").'],
            // Issue 10: recorded, but no worker runs it: a retryable error, never a success.
            'queued, no worker' => [['result' => 'queued', 'message' => 'order acme accepted', 'operation' => ['id' => 7, 'kind' => 'create', 'state' => 'pending'],
                'worker' => ['alive' => false, 'heartbeat_age_seconds' => 40.2]],
                'GeoCat Live: the bridge recorded the create (operation #7), but its worker is not running (last heartbeat 40 seconds ago), so nothing has been done yet.'
                . ' Nothing is lost: the call is recorded and safe to repeat. Retry it from Utilities > Module Queue (or run this action again) once the'
                . ' bridge\'s worker runs again; `flask --app wsgi live doctor` on the bridge says what is wrong.'],
            'queued, never a worker' => [['result' => 'queued', 'message' => 'suspend accepted', 'operation' => ['id' => 8, 'kind' => 'suspend'],
                'worker' => ['alive' => false, 'heartbeat_age_seconds' => null]],
                'GeoCat Live: the bridge recorded the suspend (operation #8), but its worker is not running (no worker heartbeat), so nothing has been done yet.'
                . ' Nothing is lost: the call is recorded and safe to repeat. Retry it from Utilities > Module Queue (or run this action again) once the'
                . ' bridge\'s worker runs again; `flask --app wsgi live doctor` on the bridge says what is wrong.'],
            'queued without a worker object' => [['result' => 'queued', 'message' => 'create accepted'],
                'GeoCat Live: the bridge recorded the create, but its worker is not running (the bridge does not report its worker), so nothing has been done yet.'
                . ' Nothing is lost: the call is recorded and safe to repeat. Retry it from Utilities > Module Queue (or run this action again) once the'
                . ' bridge\'s worker runs again; `flask --app wsgi live doctor` on the bridge says what is wrong.'],
            'queued, alive not a boolean' => [['result' => 'queued', 'worker' => ['alive' => 'yes']],
                'GeoCat Live: the bridge recorded the create, but its worker is not running (no worker heartbeat), so nothing has been done yet.'
                . ' Nothing is lost: the call is recorded and safe to repeat. Retry it from Utilities > Module Queue (or run this action again) once the'
                . ' bridge\'s worker runs again; `flask --app wsgi live doctor` on the bridge says what is wrong.'],
            'running, worker stopped' => [['result' => 'running', 'operation' => ['id' => 9, 'kind' => 'create', 'state' => 'running'],
                'worker' => ['alive' => false, 'heartbeat_age_seconds' => 7300]],
                'GeoCat Live: the bridge\'s worker stopped while running the create (operation #9) (last heartbeat 2 hours ago), so it has not finished.'
                . ' Nothing is lost: the call is recorded and safe to repeat. Retry it from Utilities > Module Queue (or run this action again) once the'
                . ' bridge\'s worker runs again; `flask --app wsgi live doctor` on the bridge says what is wrong.'],
            'no result' => [[], 'GeoCat Live: unexpected answer from the bridge (result "NULL").'],
        ];
    }

    public static function durations(): array
    {
        return [[0.4, '0 seconds'], [1.2, '1 second'], [40.6, '41 seconds'], [119, '119 seconds'], [120, '2 minutes'], [7199, '120 minutes'],
            [7200, '2 hours'], [172799, '48 hours'], [172800, '2 days'], [-3, '0 seconds']];
    }

    /**
     * @dataProvider durations
     */
    public function testHeartbeatAgesAreSaidInWords(float $seconds, string $expected): void
    {
        $this->assertSame($expected, geocatlive_duration($seconds));
    }

    /**
     * @dataProvider lifecycleAnswers
     */
    public function testLifecycleAnswersMapToSuccessOrTheReason(array $answer, string $expected): void
    {
        $this->assertSame($expected, geocatlive_lifecycleResult($answer, 'create'));
    }

    public function testEveryModuleFileRefusesDirectAccess(): void
    {
        $files = new RegexIterator(new RecursiveIteratorIterator(new RecursiveDirectoryIterator(GEOCATLIVE_MODULE_DIR)), '/\.php$/');
        $count = 0;
        foreach ($files as $file) {
            // Without comments, the first statement (after the namespace) is the guard.
            $code = preg_replace('#/\*.*?\*/#s', '', (string) file_get_contents((string) $file));
            $this->assertMatchesRegularExpression("/^<\\?php\\s+(namespace [A-Za-z\\\\]+;\\s+)?if \\(!defined\\('WHMCS'\\)\\) \\{\\s+die\\(/", $code, $file . ' starts with the WHMCS guard');
            $count++;
        }
        $this->assertSame(6, $count, 'geocatlive.php, hooks.php and four lib classes');
    }

    public function testEveryGlobalFunctionIsPrefixed(): void
    {
        $functions = get_defined_functions()['user'];
        $module = array_filter($functions, function ($name) {
            $reflection = new ReflectionFunction($name);
            return strpos((string) $reflection->getFileName(), GEOCATLIVE_MODULE_DIR) === 0;
        });
        $this->assertNotEmpty($module);
        foreach ($module as $name) {
            $this->assertStringStartsWith('geocatlive_', $name);
        }
    }

    public function testTheDailyCronHookIsRegistered(): void
    {
        $this->assertCount(1, WhmcsRecorder::$hooks['DailyCronJob'] ?? []);
        $this->assertInstanceOf(Closure::class, WhmcsRecorder::$hooks['DailyCronJob'][0]['function']);
    }
}
