<?php
/**
 * GeoCat Live: WHMCS provisioning module for the GeoCat Live Bridge.
 *
 * Every WHMCS service is one order on the bridge, keyed by the WHMCS service id
 * ($params['serviceid'], never anything from the request). The bridge answers at
 * once and does the work in its worker; each call may wait up to the product's
 * "Wait" setting for the work to end. Every call is idempotent on the bridge, so
 * WHMCS's Module Queue "Retry" is always safe.
 *
 * Server: hostname (or IP), port, "Secure" tick, and the bridge's whmcs-scope API
 * key in the Access Hash (or the Password). A scheme typed in the hostname must
 * agree with the "Secure" tick. Plain http passes Test Connection only to a
 * loopback address (the bridge on the WHMCS host).
 * Product: configoption1 = Live product slug, configoption2 = plan,
 * configoption3 = seconds to wait (0-120), configoption4 = "Clients may restore
 * backups" (yes/no, default no). A configurable option named "Plan"
 * overrides the plan. Product and plan are sent trimmed; the bridge matches them
 * without regard to case. The service's domain is sent as WHMCS has it (trimmed);
 * the bridge refuses an IP address.
 *
 * Backups (issue 13): the client area lists the service's backups and has "Back up
 * now"; staff restore from the admin services tab (any backup of the service, or the
 * final backup of one of the client's terminated services); clients restore only
 * when configoption4 allows it, which is checked here, in PHP, on every call.
 *
 * Issue 16: Server Sync (ListAccounts: every order of the bridge, paged), Usage Billing
 * (MetricProvider: disk, memory allocated and backup storage in GB, lib/MetricsProvider.php),
 * Renew (nothing to do), the client's "Logs" page (the last 100 lines of each of the service's
 * services), and every client action checked against the service's WHMCS status first.
 *
 * @see docs/WHMCS.md in the bridge's repository
 */

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

use WHMCS\Database\Capsule;
use WHMCS\Module\Server\Geocatlive\BridgeClient;
use WHMCS\Module\Server\Geocatlive\BridgeException;

require_once __DIR__ . '/lib/BridgeException.php';
require_once __DIR__ . '/lib/BridgeClient.php';

/**
 * @return array
 */
function geocatlive_MetaData()
{
    return [
        'DisplayName' => 'GeoCat Live',
        'APIVersion' => '1.1',
        'RequiresServer' => true,
        'DefaultNonSSLPort' => (string) BridgeClient::DEFAULT_HTTP_PORT,
        'DefaultSSLPort' => (string) BridgeClient::DEFAULT_HTTPS_PORT,
        'ServiceSingleSignOnLabel' => 'Log in to GeoCat Live',
        // Server Sync (WHMCS 7.8+, geocatlive_ListAccounts) and Usage Billing's tenants (MetricProvider): a service is
        // matched by its username (ListAccounts looks it up by service id: the bridge's instance is only derived from it).
        'ListAccountsUniqueIdentifierDisplayName' => 'Username',
        'ListAccountsUniqueIdentifierField' => 'username',
        'ListAccountsProductField' => 'configoption1',
    ];
}

/**
 * Module Settings of a product. Only ever append: WHMCS numbers them configoption1..N.
 *
 * @return array
 */
function geocatlive_ConfigOptions(array $params = [])
{
    return [
        // configoption1
        'Live product' => [
            'Type' => 'text',
            'Size' => '32',
            'Loader' => 'geocatlive_LoadProducts',
            'SimpleMode' => true,
            'Description' => 'The bridge\'s product (slug), e.g. geoserver-postgis.',
        ],
        // configoption2
        'Plan' => [
            'Type' => 'text',
            'Size' => '20',
            'Loader' => 'geocatlive_LoadPlans',
            'SimpleMode' => true,
            'Description' => 'The product\'s plan. A configurable option named "Plan" overrides it.',
        ],
        // configoption3
        'Wait (seconds)' => [
            'Type' => 'text',
            'Size' => '5',
            'Default' => '60',
            'SimpleMode' => true,
            'Description' => '0-120: how long a call waits for the bridge to finish before returning; 0 = return once the bridge has accepted the job.',
        ],
        // configoption4
        'Clients may restore backups' => [
            'Type' => 'yesno',
            'SimpleMode' => true,
            'Description' => 'Tick to let clients restore their own backups from the client area (the bridge backs up the current data first).'
                . ' Staff can always restore, from the service\'s page in the admin area.',
        ],
    ];
}

/**
 * Loader of configoption1: the bridge's valid products, slug => "Name (slug)".
 *
 * WHMCS's Loader contract: a failure is an Exception, whose message WHMCS shows.
 *
 * @return array
 * @throws \Exception
 */
function geocatlive_LoadProducts(array $params = [])
{
    $list = [];
    foreach (geocatlive_catalog($params, 'LoadProducts') as $product) {
        if (!empty($product['valid'])) {
            $list[$product['slug']] = $product['name'] . ' (' . $product['slug'] . ')';
        }
    }
    if (!$list) {
        throw new \Exception('GeoCat Live: the bridge has no valid product; add one to its config repository and run `live products sync`.');
    }
    return $list;
}

/**
 * Loader of configoption2: the plans of the chosen product (of all products when
 * none is chosen yet), plan => "plan (products)".
 *
 * @return array
 * @throws \Exception
 */
function geocatlive_LoadPlans(array $params = [])
{
    $chosen = trim((string) ($params['configoption1'] ?? ''));
    $products = array_filter(geocatlive_catalog($params, 'LoadPlans'), function ($product) {
        return !empty($product['valid']);
    });
    // Like the bridge: the product is matched without regard to case.
    $known = array_map('strtolower', array_column($products, 'slug'));
    $match = in_array(strtolower($chosen), $known, true);
    $plans = [];
    foreach ($products as $product) {
        if ($match && strtolower($product['slug']) !== strtolower($chosen)) {
            continue;
        }
        foreach ($product['plans'] as $plan) {
            $plans[$plan][] = $product['slug'];
        }
    }
    if (!$plans) {
        throw new \Exception('GeoCat Live: the bridge has no plans' . ($chosen !== '' ? ' for product ' . $chosen : '') . '.');
    }
    ksort($plans);
    $list = [];
    foreach ($plans as $plan => $slugs) {
        $list[$plan] = $plan . ' (' . implode(', ', $slugs) . ')';
    }
    return $list;
}

/**
 * @return string 'success' or the reason
 */
function geocatlive_CreateAccount(array $params)
{
    return geocatlive_lifecycle($params, 'CreateAccount', 'create', function (array $params) {
        $client = isset($params['clientsdetails']) && is_array($params['clientsdetails']) ? $params['clientsdetails'] : [];
        $clientId = (int) ($params['userid'] ?? ($client['userid'] ?? ($client['id'] ?? 0)));
        if ($clientId < 1) {
            throw new BridgeException('GeoCat Live: the service has no client (userid).', 0, 'configuration');
        }
        $email = trim((string) ($client['email'] ?? ''));
        if ($email === '') {
            throw new BridgeException('GeoCat Live: client #' . $clientId . ' has no email address; the bridge needs one.', 0, 'configuration');
        }
        return [
            'client' => [
                'id' => $clientId,
                'email' => $email,
                'firstname' => geocatlive_cut($client['firstname'] ?? '', 100),
                'lastname' => geocatlive_cut($client['lastname'] ?? '', 100),
                'companyname' => geocatlive_cut($client['companyname'] ?? '', 200),
            ],
            'product' => geocatlive_productSlug($params),
            'plan' => geocatlive_planName($params),
            'username' => geocatlive_cut($params['username'] ?? '', 100) ?: null,
            'domain' => geocatlive_domain($params),
            // The product's customer password (product.yml credential); other products ignore it. The module log
            // masks it (BridgeClient lists $params['password'] among the values to mask).
            'password' => geocatlive_password($params),
            'wait' => geocatlive_waitSeconds($params),
        ];
    });
}

/**
 * @return string 'success' or the reason
 */
function geocatlive_SuspendAccount(array $params)
{
    return geocatlive_lifecycle($params, 'SuspendAccount', 'suspend', function (array $params) {
        return ['reason' => geocatlive_cut($params['suspendreason'] ?? '', 500), 'wait' => geocatlive_waitSeconds($params)];
    });
}

/**
 * @return string 'success' or the reason
 */
function geocatlive_UnsuspendAccount(array $params)
{
    return geocatlive_lifecycle($params, 'UnsuspendAccount', 'unsuspend', 'geocatlive_waitBody');
}

/**
 * Archives the data, then removes the stack. A service the bridge never saw is a success.
 *
 * @return string 'success' or the reason
 */
function geocatlive_TerminateAccount(array $params)
{
    return geocatlive_lifecycle($params, 'TerminateAccount', 'terminate', 'geocatlive_waitBody');
}

/**
 * Moves the order to the product's current plan (or the "Plan" configurable option) and
 * product, and to the service's domain when it has one (a different one moves the order
 * to that hostname; an empty domain leaves the hostname as it is).
 *
 * @return string 'success' or the reason
 */
function geocatlive_ChangePackage(array $params)
{
    return geocatlive_lifecycle($params, 'ChangePackage', 'change-package', function (array $params) {
        $body = [
            'plan' => geocatlive_planName($params),
            'product' => geocatlive_productSlug($params),
            'wait' => geocatlive_waitSeconds($params),
        ];
        $domain = geocatlive_domain($params);
        if ($domain !== null) {
            $body['domain'] = $domain;
        }
        return $body;
    });
}

/**
 * Applies the service's new password (WHMCS stores it in $params['password'] before calling) to the running
 * stack, for products that declare a customer password (product.yml credential); the bridge answers others with
 * a message naming the product. The password is masked in the module log.
 *
 * @return string 'success' or the reason
 */
function geocatlive_ChangePassword(array $params)
{
    return geocatlive_lifecycle($params, 'ChangePassword', 'change-password', function (array $params) {
        $password = geocatlive_password($params);
        if ($password === null) {
            throw new BridgeException('GeoCat Live: WHMCS sent no password to set.', 0, 'configuration');
        }
        return ['password' => $password, 'wait' => geocatlive_waitSeconds($params)];
    });
}

/** The service's password from the module parameters; null when there is none. */
function geocatlive_password(array $params): ?string
{
    $password = $params['password'] ?? null;
    return is_scalar($password) && (string) $password !== '' ? (string) $password : null;
}

/**
 * Custom button (clients and admins): restart every container of the stack.
 *
 * @return string 'success' or the reason
 */
function geocatlive_Restart(array $params)
{
    // A client may restart an active service only (checked before anything is sent); staff: the bridge decides.
    $client = geocatlive_inClientArea();
    return geocatlive_clientRefusal($params, 'Restart', 'restarted', $client)
        ?? geocatlive_lifecycle($params, 'Restart', 'restart', 'geocatlive_waitBody', '', $client);
}

/**
 * Custom button (admins only): converge the stack to its definition again.
 *
 * @return string 'success' or the reason
 */
function geocatlive_Redeploy(array $params)
{
    // WHMCS already refuses client calls of functions that are not client buttons; this is a second lock.
    if (defined('CLIENTAREA') && !defined('ADMINAREA')) {
        return 'GeoCat Live: Redeploy is for staff only.';
    }
    return geocatlive_lifecycle($params, 'Redeploy', 'redeploy', 'geocatlive_waitBody');
}

/**
 * Custom button (clients and staff): take a backup now (POST /whmcs/v1/services/{id}/backups).
 * 'success' once the bridge has recorded it with a worker to run it, as for every lifecycle
 * call; the backup itself may still be running (the client area's Backups section lists it
 * once it is complete; a failed one is in the daily activity log report).
 *
 * @return string 'success' or the reason
 */
function geocatlive_BackUpNow(array $params)
{
    // A client may back up an active service only; staff may also back up a suspended one (the bridge decides).
    $client = geocatlive_inClientArea();
    return geocatlive_clientRefusal($params, 'BackUpNow', 'backed up', $client)
        ?? geocatlive_lifecycle($params, 'BackUpNow', 'backup', 'geocatlive_waitBody', 'backups', $client);
}

/**
 * Client area function (a form per backup in the Backups section, `a=RestoreBackup`,
 * `backup_id`): restore one of the service's own backups into it.
 *
 * Refused here, before anything is sent, unless the product's "Clients may restore backups"
 * (configoption4) is ticked: WHMCS lets a client call every allowed function, whatever the
 * template shows. The backup id comes from the request, so it must be one the bridge lists for
 * this service (the service id itself only ever comes from $params); the bridge checks again.
 * A final backup of a terminated service is for staff only.
 *
 * @return string 'success' or the reason
 */
function geocatlive_RestoreBackup(array $params)
{
    $refused = geocatlive_clientRefusal($params, 'RestoreBackup', 'restored from a backup', true);
    if ($refused !== null) {
        return $refused;
    }
    try {
        geocatlive_serviceId($params);
        if (!geocatlive_clientsMayRestore($params)) {
            throw new BridgeException('GeoCat Live: restoring a backup from the client area is not enabled for this product;'
                . ' please contact support to have a backup restored.', 0, 'refused');
        }
        // Only from a form post: a link (GET) never restores.
        $backupId = geocatlive_requestedBackupId($_POST['backup_id'] ?? '');
    } catch (BridgeException $e) {
        geocatlive_logLocal('RestoreBackup', $params, $e);
        return geocatlive_clientMessage($e);
    }
    return geocatlive_restore($params, 'RestoreBackup', $backupId, false);
}

/**
 * @return array
 */
function geocatlive_AdminCustomButtonArray()
{
    return ['Restart' => 'Restart', 'Redeploy' => 'Redeploy', 'Back up now' => 'BackUpNow'];
}

/**
 * Clients may restart, back up and read the logs; Redeploy is not listed, so WHMCS refuses it from the
 * client area. Each checks the service's status first (an active service only).
 *
 * @return array
 */
function geocatlive_ClientAreaCustomButtonArray()
{
    return ['Restart' => 'Restart', 'Back up now' => 'BackUpNow', 'Logs' => 'Logs'];
}

/**
 * Client area functions: RestoreBackup is posted by the forms of the Backups section (it needs a backup
 * id; it checks the product's setting itself on every call); Logs, the page of the "Logs" button, by its URL
 * (`modop=custom&a=Logs`: the page's breadcrumb).
 *
 * @return array
 */
function geocatlive_ClientAreaAllowedFunctions()
{
    return ['Restore a backup' => 'RestoreBackup', 'Logs' => 'Logs'];
}

/**
 * The server page's "Test Connection": address, TLS, key and the bridge's own health.
 *
 * Plain http passes only to a loopback address (127.0.0.0/8, ::1, localhost: the bridge
 * on the WHMCS host, where the key never leaves the machine); the module log then gets
 * a remark. Plain http to any other address fails with a warning, although the
 * connection works (the lifecycle calls still use it: see docs/WHMCS.md).
 *
 * @return array ['success' => bool, 'error' => string]
 */
function geocatlive_TestConnection(array $params)
{
    try {
        $client = geocatlive_bridge($params, 'TestConnection');
    } catch (BridgeException $e) {
        geocatlive_logLocal('TestConnection', $params, $e);
        return ['success' => false, 'error' => $e->getMessage()];
    } catch (\Throwable $e) {
        return ['success' => false, 'error' => geocatlive_unexpected('TestConnection', $params, $e)];
    }
    return geocatlive_testConnectionWith($client, $params);
}

/**
 * Test Connection with a given client (the tests pass one that connects elsewhere).
 *
 * @return array ['success' => bool, 'error' => string]
 */
function geocatlive_testConnectionWith(BridgeClient $client, array $params)
{
    try {
        $answer = $client->post('/whmcs/v1/test-connection');
        if (empty($answer['ok'])) {
            return ['success' => false, 'error' => 'GeoCat Live: the bridge at ' . $client->baseUrl() . ' did not confirm the connection.'];
        }
        $key = (string) ($answer['key'] ?? '?');
        $products = (int) ($answer['products'] ?? 0);
        $docker = (string) ($answer['docker'] ?? 'ok');
        if ($docker !== 'ok') {
            return ['success' => false, 'error' => 'GeoCat Live: the bridge answers, but its Docker engine is ' . $docker . '; provisioning will fail until it is back.'];
        }
        if ($products < 1) {
            return ['success' => false, 'error' => 'GeoCat Live: the bridge answers, but has no valid product; add one to its config repository and run `live products sync`.'];
        }
        if (!$client->isSecure()) {
            if ($client->isLoopback()) {
                $client->logRemark('POST ' . $client->baseUrl() . '/whmcs/v1/test-connection', 'GeoCat Live: connected to the bridge at ' . $client->baseUrl()
                    . ' with key "' . $key . '" (' . $products . ' products) over plain http to a loopback address: the traffic, API key included,'
                    . ' stays on this host. Use https and tick "Secure" if the bridge moves to another host.');
                return ['success' => true, 'error' => ''];
            }
            return ['success' => false, 'error' => 'GeoCat Live warning: connected to the bridge at ' . $client->baseUrl()
                . ' with key "' . $key . '" (' . $products . ' products), but over plain http: the API key travels unencrypted. Serve the bridge over https and tick "Secure".'];
        }
        return ['success' => true, 'error' => ''];
    } catch (BridgeException $e) {
        geocatlive_logLocal('TestConnection', $params, $e);
        return ['success' => false, 'error' => $e->getMessage()];
    } catch (\Throwable $e) {
        return ['success' => false, 'error' => geocatlive_unexpected('TestConnection', $params, $e)];
    }
}

/**
 * The client area: status, endpoints, progress of a running operation, last error,
 * the generated credentials and the Backups section (see geocatlive_clientBackups).
 * Values are plain text; the template escapes them.
 *
 * @return array
 */
function geocatlive_ClientArea(array $params)
{
    $live = ['available' => false, 'notice' => ''];
    try {
        $live = array_merge(geocatlive_serviceView(geocatlive_serviceInfo($params, 'ClientArea')), ['available' => true, 'notice' => '']);
        $live['backups'] = geocatlive_clientBackups($params, $live['status']);
    } catch (BridgeException $e) {
        geocatlive_logLocal('ClientArea', $params, $e);
        // Clients get no internal detail (the bridge's address, keys); staff have the module log.
        // "Not set up yet" only when the bridge itself says it has no order for the service.
        $live['notice'] = $e->isOrderNotFound()
            ? 'This service is not set up yet.'
            : 'The service details are not available right now; please try again in a few minutes.';
    } catch (\Throwable $e) {
        geocatlive_unexpected('ClientArea', $params, $e);
        $live['notice'] = 'The service details are not available right now; please try again in a few minutes.';
    }
    return [
        'templatefile' => 'templates/clientarea',
        'vars' => ['live' => $live],
    ];
}

/**
 * Extra rows on the admin's service page.
 *
 * @return array label => HTML
 */
function geocatlive_AdminServicesTabFields(array $params)
{
    try {
        $view = geocatlive_serviceView(geocatlive_serviceInfo($params, 'AdminServicesTabFields'));
    } catch (BridgeException $e) {
        geocatlive_logLocal('AdminServicesTabFields', $params, $e);
        // Anything but the bridge's own "no order" (e.g. a wrong hostname or path) shows the message, with the URL called.
        return ['GeoCat Live' => geocatlive_h($e->isOrderNotFound()
            ? 'The bridge has no order for this service yet (the module\'s Create has not reached it).'
            : $e->getMessage())];
    } catch (\Throwable $e) {
        return ['GeoCat Live' => geocatlive_h(geocatlive_unexpected('AdminServicesTabFields', $params, $e))];
    }

    $endpoints = [];
    foreach ($view['endpoints'] as $endpoint) {
        $label = geocatlive_h($endpoint['application']);
        $endpoints[] = $endpoint['url'] !== ''
            ? $label . ': <a href="' . geocatlive_h($endpoint['url']) . '" target="_blank" rel="noopener noreferrer">' . geocatlive_h($endpoint['url']) . '</a>'
            : $label;
    }
    $operation = '';
    if ($view['operation'] !== null) {
        $op = $view['operation'];
        $operation = geocatlive_h($op['kind'] . ' ' . $op['state'] . ' (attempt ' . $op['attempts'] . ' of ' . $op['maxAttempts'] . ')')
            . ($op['step'] !== '' ? ': ' . geocatlive_h($op['step']) : '');
    }
    $rows = [];
    foreach ($view['recentOperations'] as $op) {
        $rows[] = '<tr><td>' . geocatlive_h('#' . $op['id']) . '</td><td>' . geocatlive_h($op['kind']) . '</td><td>' . geocatlive_h($op['state'])
            . '</td><td>' . geocatlive_h($op['requestedBy']) . '</td><td>' . geocatlive_h($op['createdAt']) . '</td><td>' . geocatlive_h($op['finishedAt'])
            . '</td><td>' . geocatlive_h($op['error']) . '</td></tr>';
    }
    $history = $rows
        ? '<table class="table table-condensed"><thead><tr><th>Operation</th><th>Kind</th><th>State</th><th>By</th><th>Requested</th><th>Finished</th><th>Error</th></tr></thead><tbody>'
            . implode('', $rows) . '</tbody></table>'
        : 'none';

    return [
        'GeoCat Live instance' => geocatlive_h($view['instance']) . ($view['hostname'] !== '' ? ' (' . geocatlive_h($view['hostname']) . ')' : ''),
        'GeoCat Live status' => geocatlive_h($view['statusLabel'] . ': ' . $view['product'] . ', plan ' . $view['plan']),
        'GeoCat Live runtime' => geocatlive_h($view['runtime']),
        'GeoCat Live drift' => geocatlive_h($view['drift']),
        'GeoCat Live revision' => geocatlive_h($view['revision']),
        'GeoCat Live endpoints' => $endpoints ? implode('<br>', $endpoints) : 'none',
        'GeoCat Live operation' => $operation !== '' ? $operation : 'none',
        'GeoCat Live last error' => $view['lastError'] !== '' ? geocatlive_h($view['lastError']) : 'none',
        'GeoCat Live last operations' => $history,
    ] + geocatlive_adminBackupRows($params, $view['status']);
}

/**
 * The admin tab's "Save Changes": starts the restore chosen in the tab's "GeoCat Live restore" row
 * (`geocatlive_restore`, a backup id of the service or one of the client's terminated services'
 * final backups) when its confirmation box (`geocatlive_restore_confirm`) is ticked. Any other save
 * does nothing here. WHMCS shows nothing a Save returns: the outcome goes to the activity log and
 * is shown at the top of the backup rows the next time the tab is shown.
 *
 * The tab is otherwise read-only, on purpose (issue 16): WHMCS's own Admin Notes field holds staff
 * notes, and the product's Plan setting or the order's "Plan" configurable option (applied by Change
 * Package: an upgrade, or the module command "Change Package") is the plan. A second
 * place to edit either here would be a second truth that WHMCS would not know about.
 *
 * @return void
 */
function geocatlive_AdminServicesTabFieldsSave(array $params)
{
    $chosen = isset($_POST['geocatlive_restore']) && is_scalar($_POST['geocatlive_restore']) ? geocatlive_cut($_POST['geocatlive_restore'], 128) : '';
    if ($chosen === '') {
        return;
    }
    $serviceId = (int) ($params['serviceid'] ?? 0);
    if (empty($_POST['geocatlive_restore_confirm'])) {
        $result = 'GeoCat Live: tick "Replace this service\'s data" next to the backup to confirm, then save.';
    } else {
        try {
            $result = geocatlive_restore($params, 'AdminServicesTabFieldsSave', geocatlive_requestedBackupId($chosen), true);
        } catch (BridgeException $e) {
            geocatlive_logLocal('AdminServicesTabFieldsSave', $params, $e);
            $result = $e->getMessage();
        }
    }
    $message = $result === 'success'
        ? 'GeoCat Live: restore of backup ' . $chosen . ' into service #' . $serviceId . ' started; the bridge backs up the current data first.'
            . ' Follow it in "GeoCat Live operation".'
        : 'GeoCat Live: restore of backup ' . $chosen . ' into service #' . $serviceId . ' not started: ' . preg_replace('/^GeoCat Live: /', '', $result);
    if (function_exists('logActivity')) {
        logActivity($message, (int) ($params['userid'] ?? 0));
    }
    if (isset($_SESSION) && is_array($_SESSION) && $serviceId > 0) {
        $_SESSION['geocatlive_restore_result'][$serviceId] = $message;
    }
}

/**
 * GeoServer and GeoNetwork have no single sign-on hook: say so, and where to log in.
 *
 * @return array
 */
function geocatlive_ServiceSingleSignOn(array $params)
{
    $where = 'the service\'s address';
    try {
        $view = geocatlive_serviceView(geocatlive_serviceInfo($params, 'ServiceSingleSignOn'));
        foreach ($view['endpoints'] as $endpoint) {
            if ($endpoint['url'] !== '') {
                $where = $endpoint['url'];
                break;
            }
        }
    } catch (\Throwable $e) {
        // The answer below is right without the address too.
    }
    return [
        'success' => false,
        'errorMsg' => 'Single sign-on is not supported by GeoCat Live products yet: log in at ' . $where . ' with the credentials shown in the client area.',
    ];
}

/**
 * Daily cron, once per server: disk usage of every service of this server, in MB,
 * from one bridge request. The bridge has no disk quota or bandwidth counter.
 * The bridge answers what its worker last measured; a service whose disk it has not
 * measured yet (disk_mb null: a new order) is left as WHMCS has it until the next run.
 *
 * @return string 'success' or the reason
 */
function geocatlive_UsageUpdate(array $params)
{
    try {
        $serverId = (int) ($params['serverid'] ?? 0);
        if ($serverId < 1) {
            throw new BridgeException('GeoCat Live: usage update without a server id.', 0, 'configuration');
        }
        $answer = geocatlive_bridge($params, 'UsageUpdate')->get('/whmcs/v1/usage');
        if (!isset($answer['services']) || !is_array($answer['services'])) {
            throw new BridgeException('GeoCat Live: the bridge\'s usage answer has no service list.', 0, 'invalid_response');
        }
        $now = date('Y-m-d H:i:s');
        foreach ($answer['services'] as $usage) {
            $serviceId = is_array($usage) ? (int) ($usage['service_id'] ?? 0) : 0;
            if ($serviceId < 1 || (array_key_exists('disk_mb', $usage) && $usage['disk_mb'] === null)) {
                continue;
            }
            Capsule::table('tblhosting')
                ->where('id', $serviceId)
                ->where('server', $serverId)
                ->update([
                    'diskusage' => (int) ceil(max(0.0, (float) ($usage['disk_mb'] ?? 0))),
                    'disklimit' => 0,
                    'bwusage' => 0,
                    'bwlimit' => 0,
                    'lastupdate' => $now,
                ]);
        }
        return 'success';
    } catch (BridgeException $e) {
        geocatlive_logLocal('UsageUpdate', $params, $e);
        return $e->getMessage();
    } catch (\Throwable $e) {
        return geocatlive_unexpected('UsageUpdate', $params, $e);
    }
}

// ---------------------------------------------------------------------------
// Internals (not called by WHMCS)
// ---------------------------------------------------------------------------

/**
 * Runs one lifecycle call: POST /whmcs/v1/services/{serviceid}/{route} ($route defaults to $verb;
 * $verb names the operation in messages when the answer does not).
 *
 * @param callable $body function (array $params): array, may throw BridgeException
 * @return string 'success' or the reason
 */
function geocatlive_lifecycle(array $params, string $action, string $verb, callable $body, string $route = '', bool $forClient = false)
{
    try {
        $serviceId = geocatlive_serviceId($params);
        $payload = $body($params);
        $answer = geocatlive_bridge($params, $action)->post('/whmcs/v1/services/' . $serviceId . '/' . ($route !== '' ? $route : $verb), $payload);
        return geocatlive_lifecycleResult($answer, $verb);
    } catch (BridgeException $e) {
        geocatlive_logLocal($action, $params, $e);
        return $forClient ? geocatlive_clientMessage($e) : $e->getMessage();
    } catch (\Throwable $e) {
        $message = geocatlive_unexpected($action, $params, $e);
        return $forClient ? GEOCATLIVE_CLIENT_UNAVAILABLE : $message;
    }
}

/** What a client reads instead of an error whose words are for staff (the bridge's address, the key, a curl error). */
const GEOCATLIVE_CLIENT_UNAVAILABLE = 'GeoCat Live: this cannot be done right now; please try again in a few minutes, or contact support if it keeps failing.';

/**
 * A failure as the client area may show it: WHMCS shows a client's custom action's error to the client, so only
 * the bridge's own refusals (its public 4xx text, a refused or unknown backup) are shown as they are; the bridge
 * unreachable, a rejected key, a wrong server setting or a server error become GEOCATLIVE_CLIENT_UNAVAILABLE (the
 * detail is in the module log).
 */
function geocatlive_clientMessage(BridgeException $e): string
{
    $status = $e->getHttpStatus();
    $code = $e->getErrorCode();
    $public = in_array($code, ['refused', 'backup_not_found'], true)
        || ($status >= 400 && $status < 500 && !in_array($status, [401, 403], true) && $code !== 'not_bridge');
    return $public ? $e->getMessage() : GEOCATLIVE_CLIENT_UNAVAILABLE;
}

/**
 * What WHMCS gets for a lifecycle answer: 'success' or the reason.
 *
 * - succeeded, unchanged: success.
 * - queued (recorded, not started yet) and running (started): success while the bridge says a
 *   worker runs its operations (worker.alive is true): the job is recorded and will finish without
 *   WHMCS retrying, as for any asynchronous provisioning. With worker.alive false the job waits for a
 *   worker that is not there: an error (WHMCS keeps the service as it was, and an automated action
 *   goes to the Module Queue) that says so, that nothing is lost, and to retry once the worker runs.
 *   A queued answer without a worker object is treated the same way (every bridge that answers
 *   queued reports its worker; one that does not cannot vouch for it).
 * - accepted, and running without a worker object: what bridges before the worker heartbeat
 *   answered; they cannot tell whether a worker runs, so it is a success, as it always was.
 * - failed: the bridge's reason.
 */
function geocatlive_lifecycleResult(array $answer, string $verb): string
{
    $result = $answer['result'] ?? null;
    $message = is_scalar($answer['message'] ?? null) ? trim((string) $answer['message']) : '';
    if (in_array($result, ['succeeded', 'unchanged', 'accepted'], true)) {
        return 'success';
    }
    if ($result === 'queued' || $result === 'running') {
        $worker = is_array($answer['worker'] ?? null) ? $answer['worker'] : null;
        if ($worker === null && $result === 'running') {
            return 'success';
        }
        if ($worker !== null && ($worker['alive'] ?? null) === true) {
            return 'success';
        }
        return geocatlive_noWorkerMessage($answer, $verb, $worker);
    }
    if ($result === 'failed') {
        $kind = is_array($answer['operation'] ?? null) && isset($answer['operation']['kind']) ? (string) $answer['operation']['kind'] : $verb;
        if ($message === '' || $message === $kind . ' failed') {
            return 'GeoCat Live: ' . $kind . ' failed.';
        }
        return 'GeoCat Live: ' . $kind . ' failed: ' . $message;
    }
    return 'GeoCat Live: unexpected answer from the bridge (result "' . (is_scalar($result) ? $result : gettype($result)) . '").';
}

/**
 * The error for a queued or running job that no worker runs: what happened, that nothing is
 * lost, and what to do. $worker is the answer's worker object (null when it had none).
 */
function geocatlive_noWorkerMessage(array $answer, string $verb, ?array $worker): string
{
    $operation = is_array($answer['operation'] ?? null) ? $answer['operation'] : [];
    $kind = isset($operation['kind']) && is_scalar($operation['kind']) ? (string) $operation['kind'] : $verb;
    $what = 'the ' . $kind . (isset($operation['id']) && is_numeric($operation['id']) ? ' (operation #' . (int) $operation['id'] . ')' : '');
    if ($worker === null) {
        $since = 'the bridge does not report its worker';
    } elseif (isset($worker['heartbeat_age_seconds']) && is_numeric($worker['heartbeat_age_seconds'])) {
        $since = 'last heartbeat ' . geocatlive_duration((float) $worker['heartbeat_age_seconds']) . ' ago';
    } else {
        $since = 'no worker heartbeat';
    }
    $head = ($answer['result'] ?? '') === 'running'
        ? 'GeoCat Live: the bridge\'s worker stopped while running ' . $what . ' (' . $since . '), so it has not finished.'
        : 'GeoCat Live: the bridge recorded ' . $what . ', but its worker is not running (' . $since . '), so nothing has been done yet.';
    return $head . ' Nothing is lost: the call is recorded and safe to repeat. Retry it from Utilities > Module Queue'
        . ' (or run this action again) once the bridge\'s worker runs again; `flask --app wsgi live doctor` on the bridge says what is wrong.';
}

/** Seconds in words: "1 second", "40 seconds", "7 minutes" (from 2 minutes), "3 hours" (from 2 hours), "2 days" (from 2 days). */
function geocatlive_duration(float $seconds): string
{
    $seconds = max(0.0, $seconds);
    $count = (int) round($seconds);
    $name = 'second';
    foreach ([[86400 * 2, 86400, 'day'], [7200, 3600, 'hour'], [120, 60, 'minute']] as list($from, $unit, $unitName)) {
        if ($seconds >= $from) {
            $count = (int) round($seconds / $unit);
            $name = $unitName;
            break;
        }
    }
    return $count . ' ' . $name . ($count === 1 ? '' : 's');
}

/** The body of the calls that only take `wait`. */
function geocatlive_waitBody(array $params): array
{
    return ['wait' => geocatlive_waitSeconds($params)];
}

/**
 * A client for the service's server, logging under $action.
 *
 * @throws BridgeException
 */
function geocatlive_bridge(array $params, string $action): BridgeClient
{
    return BridgeClient::fromServerParams($params, BridgeClient::moduleLogger($action));
}

/**
 * The WHMCS service id, only ever from the module parameters.
 *
 * @throws BridgeException
 */
function geocatlive_serviceId(array $params): int
{
    $id = $params['serviceid'] ?? null;
    if (!is_numeric($id) || (int) $id < 1 || (int) $id > 2147483647) {
        throw new BridgeException('GeoCat Live: no WHMCS service id in the module parameters.', 0, 'configuration');
    }
    return (int) $id;
}

/** configoption3, clamped to what the bridge accepts (0-120 s). */
function geocatlive_waitSeconds(array $params): int
{
    return BridgeClient::clampWait($params['configoption3'] ?? 0);
}

/**
 * configoption1.
 *
 * @throws BridgeException
 */
function geocatlive_productSlug(array $params): string
{
    $slug = trim((string) ($params['configoption1'] ?? ''));
    if ($slug === '') {
        throw new BridgeException('GeoCat Live: the product has no Live product; choose one in its Module Settings.', 0, 'configuration');
    }
    return $slug;
}

/**
 * The configurable option "Plan" when the order has one, else configoption2; trimmed.
 *
 * WHMCS passes a configurable option keyed by its name and valued by the chosen
 * sub-option's name, each without the "|Display name" part an admin may add
 * ("large|Large, 4 workers" arrives as "large"). The option's name is matched
 * without regard to case and spaces ("Plan", "plan"), and a value that still holds
 * a "|" is cut there as WHMCS does. The plan's case is left to the bridge, which
 * matches plans without regard to case and names the valid ones when it knows none.
 *
 * @throws BridgeException
 */
function geocatlive_planName(array $params): string
{
    $plan = '';
    $options = isset($params['configoptions']) && is_array($params['configoptions']) ? $params['configoptions'] : [];
    foreach ($options as $name => $value) {
        $name = strtolower(trim(explode('|', (string) $name, 2)[0]));
        if ($name === 'plan' && is_scalar($value)) {
            $plan = trim(explode('|', (string) $value, 2)[0]);
            if ($plan !== '') {
                break;
            }
        }
    }
    if ($plan === '') {
        $plan = trim((string) ($params['configoption2'] ?? ''));
    }
    if ($plan === '') {
        throw new BridgeException('GeoCat Live: the product has no plan; choose one in its Module Settings (or add a configurable option "Plan").', 0, 'configuration');
    }
    return $plan;
}

/**
 * The service's domain as WHMCS has it (trimmed), or null when empty. It is not
 * checked here: the bridge refuses what is not a DNS name (an IP address, for one)
 * with a message naming it.
 */
function geocatlive_domain(array $params): ?string
{
    // Never shortened: a cut domain is another hostname. The bridge refuses one that is too long, by name.
    $domain = geocatlive_text($params['domain'] ?? '');
    return $domain !== '' ? $domain : null;
}

/**
 * GET /whmcs/v1/services/{serviceid}.
 *
 * @throws BridgeException
 */
function geocatlive_serviceInfo(array $params, string $action): array
{
    $serviceId = geocatlive_serviceId($params);
    return geocatlive_bridge($params, $action)->get('/whmcs/v1/services/' . $serviceId);
}

/**
 * The bridge's product list, each with slug, name, valid and plans.
 *
 * @throws BridgeException
 */
function geocatlive_catalog(array $params, string $action): array
{
    $answer = geocatlive_bridge($params, $action)->get('/whmcs/v1/products');
    $products = [];
    foreach (is_array($answer['products'] ?? null) ? $answer['products'] : [] as $product) {
        if (!is_array($product) || !isset($product['slug']) || !is_string($product['slug'])) {
            continue;
        }
        $products[] = [
            'slug' => $product['slug'],
            'name' => is_string($product['name'] ?? null) ? $product['name'] : $product['slug'],
            'valid' => !empty($product['valid']),
            'plans' => array_values(array_filter(is_array($product['plans'] ?? null) ? $product['plans'] : [], 'is_string')),
        ];
    }
    return $products;
}

/**
 * The bridge's service info as plain strings and lists, for the client area,
 * the admin tab and single sign-on. URLs that are not http(s) are dropped.
 */
function geocatlive_serviceView(array $info): array
{
    $labels = ['pending' => 'Being set up', 'active' => 'Active', 'suspended' => 'Suspended', 'failed' => 'Failed', 'terminated' => 'Terminated'];
    $classes = ['pending' => 'info', 'active' => 'success', 'suspended' => 'warning', 'failed' => 'danger', 'terminated' => 'default'];
    $status = geocatlive_text($info['status'] ?? '');

    $endpoints = [];
    foreach (is_array($info['endpoints'] ?? null) ? $info['endpoints'] : [] as $endpoint) {
        if (is_array($endpoint)) {
            $endpoints[] = [
                'application' => geocatlive_text($endpoint['application'] ?? ''),
                'service' => geocatlive_text($endpoint['service'] ?? ''),
                'url' => geocatlive_safeUrl($endpoint['url'] ?? ''),
            ];
        }
    }
    $credentials = [];
    foreach (is_array($info['secrets'] ?? null) ? $info['secrets'] : [] as $name => $value) {
        $credentials[] = ['name' => geocatlive_text($name), 'value' => geocatlive_text($value)];
    }
    $recent = [];
    foreach (is_array($info['recent_operations'] ?? null) ? $info['recent_operations'] : [] as $operation) {
        if (is_array($operation)) {
            $recent[] = geocatlive_operationView($operation);
        }
    }
    $operation = is_array($info['operation'] ?? null) ? geocatlive_operationView($info['operation']) : null;

    return [
        'runtime' => geocatlive_runtimeText($info['runtime'] ?? null),
        'drift' => geocatlive_driftText($info['drift'] ?? null),
        'serviceId' => (int) ($info['service_id'] ?? 0),
        'instance' => geocatlive_text($info['instance'] ?? ''),
        'hostname' => geocatlive_text($info['hostname'] ?? ''),
        'status' => $status,
        'statusLabel' => $labels[$status] ?? ucfirst($status),
        'statusClass' => $classes[$status] ?? 'default',
        'product' => geocatlive_text($info['product'] ?? ''),
        'plan' => geocatlive_text($info['plan'] ?? ''),
        'revision' => geocatlive_text($info['revision'] ?? ''),
        'endpoints' => $endpoints,
        'operation' => $operation,
        'running' => $operation !== null && $operation['running'],
        'lastError' => geocatlive_text($info['last_error'] ?? ''),
        'credentials' => $credentials,
        'recentOperations' => $recent,
    ];
}

function geocatlive_operationView(array $operation): array
{
    $steps = is_array($operation['steps'] ?? null) ? $operation['steps'] : [];
    $last = $steps ? end($steps) : null;
    $state = geocatlive_text($operation['state'] ?? '');
    return [
        'id' => (int) ($operation['id'] ?? 0),
        'kind' => geocatlive_text($operation['kind'] ?? ''),
        'state' => $state,
        'running' => in_array($state, ['pending', 'running'], true),
        'step' => is_array($last) ? geocatlive_text($last['message'] ?? '') : '',
        'stepCount' => count($steps),
        'attempts' => (int) ($operation['attempts'] ?? 0),
        'maxAttempts' => (int) ($operation['max_attempts'] ?? 0),
        'error' => geocatlive_text($operation['error'] ?? ''),
        'requestedBy' => geocatlive_text($operation['requested_by'] ?? ''),
        'createdAt' => geocatlive_text($operation['created_at'] ?? ''),
        'startedAt' => geocatlive_text($operation['started_at'] ?? ''),
        'finishedAt' => geocatlive_text($operation['finished_at'] ?? ''),
    ];
}

/** A scalar as a single-line string without control characters. */
function geocatlive_text($value): string
{
    if (!is_scalar($value)) {
        return '';
    }
    return trim((string) preg_replace('/[\x00-\x1f\x7f]+/', ' ', (string) $value));
}

/** At most $length characters of a scalar. */
function geocatlive_cut($value, int $length): string
{
    $text = geocatlive_text($value);
    return function_exists('mb_substr') ? mb_substr($text, 0, $length, 'UTF-8') : substr($text, 0, $length);
}

/** An http(s) URL, or '' (no javascript:, data: or relative links in the pages). */
function geocatlive_safeUrl($value): string
{
    $url = geocatlive_text($value);
    $scheme = strtolower((string) parse_url($url, PHP_URL_SCHEME));
    return in_array($scheme, ['http', 'https'], true) && (string) parse_url($url, PHP_URL_HOST) !== '' ? $url : '';
}

/** HTML-escaped text for the admin area. */
function geocatlive_h($value): string
{
    return htmlspecialchars(is_scalar($value) ? (string) $value : '', ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

/** The values the module log must mask: token and passwords from the parameters. */
function geocatlive_secrets(array $params): array
{
    $secrets = [];
    foreach (['serveraccesshash', 'serverpassword', 'password'] as $key) {
        if (isset($params[$key]) && is_scalar($params[$key]) && strlen((string) $params[$key]) >= 4) {
            $secrets[] = (string) $params[$key];
        }
    }
    return $secrets;
}

/** Logs a failure that never reached the bridge (bad settings, missing ids, a refused request). */
function geocatlive_logLocal(string $action, array $params, BridgeException $e)
{
    if (in_array($e->getErrorCode(), ['configuration', 'refused'], true) && function_exists('logModuleCall')) {
        logModuleCall('geocatlive', $action, '(not sent)', $e->getMessage(), '', geocatlive_secrets($params));
    }
}

/** Logs an unexpected error and turns it into a message (never a stack trace). */
function geocatlive_unexpected(string $action, array $params, \Throwable $e): string
{
    $message = 'GeoCat Live: unexpected error in the module (' . get_class($e) . ': ' . $e->getMessage() . ').';
    if (function_exists('logModuleCall')) {
        logModuleCall('geocatlive', $action, '(not sent)', $message, '', geocatlive_secrets($params));
    }
    return $message;
}

// ---------------------------------------------------------------------------
// Backups (issue 13)
// ---------------------------------------------------------------------------

/** configoption4 "Clients may restore backups": WHMCS stores a ticked yesno as "on". Default: no. */
function geocatlive_clientsMayRestore(array $params): bool
{
    $value = $params['configoption4'] ?? '';
    if (is_bool($value)) {
        return $value;
    }
    return in_array(strtolower(trim(is_scalar($value) ? (string) $value : '')), ['on', '1', 'yes', 'true'], true);
}

/**
 * A backup id from the request: letters, digits, ".", "_", "-" (the bridge's ids look like
 * 20260103T021500Z-0a1b2c3d), at most 128 characters.
 *
 * @throws BridgeException (error code "refused")
 */
function geocatlive_requestedBackupId($value): string
{
    $id = is_scalar($value) ? trim((string) $value) : '';
    if ($id === '') {
        throw new BridgeException('GeoCat Live: no backup was chosen to restore.', 0, 'refused');
    }
    if (preg_match('/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/', $id) !== 1) {
        throw new BridgeException('GeoCat Live: "' . geocatlive_cut($id, 40) . '" is not a backup id.', 0, 'refused');
    }
    return $id;
}

/**
 * GET /whmcs/v1/services/{serviceid}/backups: {order_id, instance, backups (newest first),
 * restorable (final backups of the same customer's terminated services of the same product),
 * last_success_at, last_failure}. The store unreachable: BridgeException backup_store (HTTP 503).
 *
 * @throws BridgeException
 */
function geocatlive_backupList(array $params, string $action, ?BridgeClient $client = null): array
{
    $serviceId = geocatlive_serviceId($params);
    return ($client ?: geocatlive_bridge($params, $action))->get('/whmcs/v1/services/' . $serviceId . '/backups');
}

/**
 * Restores $backupId into the service: checks that the bridge lists it for this service (among
 * `backups`, and for staff also among `restorable`), then POST
 * /whmcs/v1/services/{serviceid}/backups/{backup_id}/restore with `wait`.
 *
 * @return string 'success' or the reason
 */
function geocatlive_restore(array $params, string $action, string $backupId, bool $staff): string
{
    try {
        $serviceId = geocatlive_serviceId($params);
        $client = geocatlive_bridge($params, $action);
        $list = geocatlive_backupList($params, $action, $client);
        $known = [];
        foreach (['backups', $staff ? 'restorable' : null] as $key) {
            foreach ($key !== null && is_array($list[$key] ?? null) ? $list[$key] : [] as $backup) {
                if (is_array($backup) && isset($backup['backup_id']) && is_scalar($backup['backup_id'])) {
                    $known[(string) $backup['backup_id']] = true;
                }
            }
        }
        if (!isset($known[$backupId])) {
            throw new BridgeException('GeoCat Live: backup ' . $backupId . ' is not a backup of this service'
                . ($staff ? ', nor the final backup of one of this client\'s terminated services of the same product' : '')
                . '; reload the page to see the current list.', 0, 'refused');
        }
        $answer = $client->post('/whmcs/v1/services/' . $serviceId . '/backups/' . rawurlencode($backupId) . '/restore', geocatlive_waitBody($params));
        return geocatlive_lifecycleResult($answer, 'restore');
    } catch (BridgeException $e) {
        geocatlive_logLocal($action, $params, $e);
        return $staff ? $e->getMessage() : geocatlive_clientMessage($e);
    } catch (\Throwable $e) {
        $message = geocatlive_unexpected($action, $params, $e);
        return $staff ? $message : GEOCATLIVE_CLIENT_UNAVAILABLE;
    }
}

/** A BackupOut of the bridge as plain strings: id, time, kind, size, services, and whose it is. */
function geocatlive_backupView(array $backup): array
{
    $bytes = is_numeric($backup['size'] ?? null) ? max(0, (int) $backup['size']) : 0;
    $services = array_map('geocatlive_text', array_filter(is_array($backup['services'] ?? null) ? $backup['services'] : [], 'is_scalar'));
    $kind = geocatlive_text($backup['kind'] ?? '');
    return [
        'id' => geocatlive_text($backup['backup_id'] ?? ''),
        'createdAt' => geocatlive_when($backup['created_at'] ?? ''),
        'kind' => $kind,
        'kindLabel' => geocatlive_backupKindLabel($kind),
        'bytes' => $bytes,
        'size' => geocatlive_bytes($bytes),
        'services' => implode(', ', $services),
        'revision' => geocatlive_text($backup['revision'] ?? ''),
        'plan' => geocatlive_text($backup['plan'] ?? ''),
        'serviceId' => (int) ($backup['service_id'] ?? 0),
        'orderId' => (int) ($backup['order_id'] ?? 0),
    ];
}

/**
 * The backups answer as plain strings: items (newest first, as the bridge lists them),
 * restorable, lastSuccessAt ('' when none), lastFailure (null, or at, kind, kindLabel, error),
 * failing (true when the last failure is newer than the last success, or there is no success).
 * Entries without a backup id are dropped.
 */
function geocatlive_backupsView(array $answer): array
{
    $lists = [];
    foreach (['backups' => 'items', 'restorable' => 'restorable'] as $key => $name) {
        $lists[$name] = [];
        foreach (is_array($answer[$key] ?? null) ? $answer[$key] : [] as $backup) {
            if (is_array($backup)) {
                $view = geocatlive_backupView($backup);
                if ($view['id'] !== '') {
                    $lists[$name][] = $view;
                }
            }
        }
    }
    $failure = null;
    if (is_array($answer['last_failure'] ?? null)) {
        $kind = geocatlive_text($answer['last_failure']['kind'] ?? '');
        $failure = [
            'at' => geocatlive_when($answer['last_failure']['at'] ?? ''),
            'kind' => $kind,
            'kindLabel' => geocatlive_backupKindLabel($kind),
            'error' => geocatlive_text($answer['last_failure']['error'] ?? ''),
        ];
    }
    $successTime = is_string($answer['last_success_at'] ?? null) ? strtotime($answer['last_success_at']) : false;
    $failureTime = $failure !== null && is_string($answer['last_failure']['at'] ?? null) ? strtotime($answer['last_failure']['at']) : false;
    return $lists + [
        'lastSuccessAt' => geocatlive_when($answer['last_success_at'] ?? ''),
        'lastFailure' => $failure,
        'failing' => $failure !== null && ($successTime === false || $failureTime === false || $failureTime > $successTime),
    ];
}

/**
 * The client area's Backups section: the service's own backups (never another service's),
 * whether "Back up now" and "Restore" are offered (an active service; Restore only when the
 * product allows clients to restore), or a notice when the list cannot be had.
 */
function geocatlive_clientBackups(array $params, string $status): array
{
    $section = [
        'available' => false, 'notice' => '', 'serviceId' => (int) ($params['serviceid'] ?? 0), 'items' => [],
        'lastSuccessAt' => '', 'lastFailure' => null, 'failing' => false, 'canBackUp' => $status === 'active',
        'canRestore' => $status === 'active' && geocatlive_clientsMayRestore($params),
    ];
    try {
        $view = geocatlive_backupsView(geocatlive_backupList($params, 'ClientArea'));
    } catch (BridgeException $e) {
        geocatlive_logLocal('ClientArea', $params, $e);
        $section['notice'] = 'The list of backups is not available right now; please try again in a few minutes.';
        return $section;
    } catch (\Throwable $e) {
        geocatlive_unexpected('ClientArea', $params, $e);
        $section['notice'] = 'The list of backups is not available right now; please try again in a few minutes.';
        return $section;
    }
    unset($view['restorable']);
    return array_merge($section, $view, ['available' => true]);
}

/**
 * The admin tab's backup rows: the outcome of the last restore started from this tab (once), the
 * last success and failure, the service's backups, the client's restorable final backups, and the
 * restore control (a choice of backup and a confirmation box, used by "Save Changes").
 *
 * @return array label => HTML
 */
function geocatlive_adminBackupRows(array $params, string $status): array
{
    $rows = [];
    $serviceId = (int) ($params['serviceid'] ?? 0);
    if (isset($_SESSION['geocatlive_restore_result'][$serviceId]) && is_scalar($_SESSION['geocatlive_restore_result'][$serviceId])) {
        $rows['GeoCat Live restore result'] = geocatlive_h($_SESSION['geocatlive_restore_result'][$serviceId]);
        unset($_SESSION['geocatlive_restore_result'][$serviceId]);
    }
    try {
        $view = geocatlive_backupsView(geocatlive_backupList($params, 'AdminServicesTabFields'));
    } catch (BridgeException $e) {
        geocatlive_logLocal('AdminServicesTabFields', $params, $e);
        $message = $e->getMessage();
        if ($e->isNotTheBridge()) {
            $message .= ' A bridge from before backups (issue 13) has no backup routes either: update the bridge if the rest of this page works.';
        }
        return $rows + ['GeoCat Live backups' => geocatlive_h($message)];
    } catch (\Throwable $e) {
        return $rows + ['GeoCat Live backups' => geocatlive_h(geocatlive_unexpected('AdminServicesTabFields', $params, $e))];
    }

    $last = 'last success: ' . ($view['lastSuccessAt'] !== '' ? $view['lastSuccessAt'] : 'never');
    if ($view['lastFailure'] !== null) {
        $failure = $view['lastFailure'];
        $last .= '; last failure: ' . $failure['at'] . ' (' . $failure['kindLabel'] . ')' . ($failure['error'] !== '' ? ': ' . $failure['error'] : '');
    }
    $rows['GeoCat Live last backup'] = geocatlive_h($last);

    $table = function (array $backups, bool $owner) {
        $body = '';
        foreach ($backups as $backup) {
            $body .= '<tr>' . ($owner ? '<td>' . geocatlive_h('service #' . $backup['serviceId'] . ' (order ' . $backup['orderId'] . ')') . '</td>' : '')
                . '<td>' . geocatlive_h($backup['createdAt']) . '</td><td>' . geocatlive_h($backup['kindLabel']) . '</td><td>' . geocatlive_h($backup['size'])
                . '</td><td>' . geocatlive_h($backup['services']) . '</td><td>' . geocatlive_h($backup['revision'] . ', plan ' . $backup['plan'])
                . '</td><td><code>' . geocatlive_h($backup['id']) . '</code></td></tr>';
        }
        return '<table class="table table-condensed"><thead><tr>' . ($owner ? '<th>Terminated service</th>' : '')
            . '<th>Created</th><th>Kind</th><th>Size</th><th>Services</th><th>Revision</th><th>Backup id</th></tr></thead><tbody>' . $body . '</tbody></table>';
    };
    $rows['GeoCat Live backups'] = $view['items'] ? $table($view['items'], false) : 'none yet';
    if ($view['restorable']) {
        $rows['GeoCat Live restorable final backups'] = $table($view['restorable'], true);
    }

    if (!$view['items'] && !$view['restorable']) {
        return $rows;
    }
    if ($status !== 'active') {
        $rows['GeoCat Live restore'] = geocatlive_h('A backup can be restored into an active service only (this one is ' . ($status !== '' ? $status : 'unknown') . ').');
        return $rows;
    }
    $options = '<option value="" selected>(no restore)</option>';
    foreach ($view['items'] as $backup) {
        $options .= '<option value="' . geocatlive_h($backup['id']) . '">' . geocatlive_h($backup['createdAt'] . ', ' . $backup['kindLabel'] . ', ' . $backup['size']) . '</option>';
    }
    foreach ($view['restorable'] as $backup) {
        $options .= '<option value="' . geocatlive_h($backup['id']) . '">' . geocatlive_h('final backup of terminated service #' . $backup['serviceId'] . ', '
            . $backup['createdAt'] . ', ' . $backup['size']) . '</option>';
    }
    $rows['GeoCat Live restore'] = '<select name="geocatlive_restore" class="form-control select-inline">' . $options . '</select> '
        . '<label class="checkbox-inline"><input type="checkbox" name="geocatlive_restore_confirm" value="1"> Replace this service\'s data</label> '
        . '<span class="help-block">Choose a backup, tick the box and click "Save Changes": the bridge backs up the current data, then restores'
        . ' the chosen backup (the service is briefly unavailable).</span>';
    return $rows;
}

/** "Scheduled", "On demand", "Before a change", "Before a restore", "Final (at termination)"; other kinds as they are. */
function geocatlive_backupKindLabel(string $kind): string
{
    $labels = ['scheduled' => 'Scheduled', 'on_demand' => 'On demand', 'pre_change' => 'Before a change', 'pre_restore' => 'Before a restore',
        'final' => 'Final (at termination)'];
    return $labels[$kind] ?? ucfirst(str_replace('_', ' ', $kind));
}

/** An ISO 8601 time of the bridge as "2026-01-03 02:15 UTC"; text that is not a time as it is ('' for none). */
function geocatlive_when($value): string
{
    $text = geocatlive_text($value);
    if ($text === '' || preg_match('/^\d{4}-\d\d-\d\dT\d\d:\d\d/', $text) !== 1) {
        return $text;
    }
    $time = strtotime($text);
    return $time === false ? $text : gmdate('Y-m-d H:i', $time) . ' UTC';
}

/** Bytes in words: "900 bytes", "50.0 MB", "1.2 GB" (units of 1024). */
function geocatlive_bytes(int $bytes): string
{
    if ($bytes < 1024) {
        return $bytes . ($bytes === 1 ? ' byte' : ' bytes');
    }
    $size = (float) $bytes;
    foreach (['KB', 'MB', 'GB', 'TB'] as $unit) {
        $size /= 1024;
        if ($size < 1024 || $unit === 'TB') {
            return number_format($size, 1, '.', '') . ' ' . $unit;
        }
    }
    return $bytes . ' bytes';
}

// ---------------------------------------------------------------------------
// Issue 16: Server Sync, Usage Billing, Renew, the client's Logs, status checks
// ---------------------------------------------------------------------------

/** Services per page the module asks of GET /whmcs/v1/accounts (the bridge allows 1-1000). */
const GEOCATLIVE_ACCOUNTS_PAGE = 500;
/** The last lines of each service the client's Logs page shows. */
const GEOCATLIVE_LOG_LINES = 100;
/** The most services the Logs page reads (one request each). */
const GEOCATLIVE_LOG_SERVICES = 20;
/** The most bytes of one service's answer the Logs page keeps (its end: the newest lines); a line longer than
 * GEOCATLIVE_LOG_LINE_CHARS characters is shown cut. A service logging huge lines cannot fill PHP's memory. */
const GEOCATLIVE_LOG_BYTES = 262144;
const GEOCATLIVE_LOG_LINE_CHARS = 2000;
/** After this many seconds the Logs page reads no further service (a slow bridge must not hold the client's page
 * past PHP's max_execution_time: each read may take up to the bridge's LIVE_LOGS_TIMEOUT_SECONDS). */
const GEOCATLIVE_LOG_PAGE_SECONDS = 20;

/**
 * WHMCS Server Sync (7.8+): every order the bridge knows, for WHMCS to compare with its services
 * and import. Walks `GET /whmcs/v1/accounts` page by page (GEOCATLIVE_ACCOUNTS_PAGE services a page,
 * `after` = the previous page's `next`). Each account has WHMCS's documented keys: email, username
 * (the instance), domain (the host name), uniqueIdentifier (the username of the order's WHMCS service
 * on this server, else the instance: MetaData's ListAccountsUniqueIdentifierField is `username`; see
 * geocatlive_listAccountsWith), product (the Live product slug: configoption1),
 * primaryip (none: ''), created ("Y-m-d H:i:s", UTC) and status (WHMCS\Service\Status: Pending,
 * Active, Suspended, Terminated); plus service_id (the WHMCS service id the order belongs to).
 *
 * @return array ['success' => true, 'accounts' => [...]] or ['success' => false, 'accounts' => [], 'error' => reason]
 */
function geocatlive_ListAccounts(array $params)
{
    try {
        $client = geocatlive_bridge($params, 'ListAccounts');
        return geocatlive_listAccountsWith($client, GEOCATLIVE_ACCOUNTS_PAGE, geocatlive_usernamesOnServer((int) ($params['serverid'] ?? 0)));
    } catch (BridgeException $e) {
        geocatlive_logLocal('ListAccounts', $params, $e);
        return ['success' => false, 'accounts' => [], 'error' => $e->getMessage()];
    } catch (\Throwable $e) {
        return ['success' => false, 'accounts' => [], 'error' => geocatlive_unexpected('ListAccounts', $params, $e)];
    }
}

/**
 * ListAccounts with a given client and page size (the tests walk small pages). WHMCS matches an account with
 * its services by `uniqueIdentifier` against each service's username (MetaData's ListAccountsUniqueIdentifierField),
 * but the bridge's instance is only derived from that username (lowercased, made unique: "JohnDoe" is "johndoe",
 * a second "acme" is "acme-2", no username gives "order-<id>"). So an order whose WHMCS service is on this server
 * is identified by that service's username ($usernames, service id => username, from tblhosting): the match is
 * by service id, as the bridge keys its orders. An order without such a service keeps its instance.
 *
 * @param array $usernames WHMCS service id => username of the server's services (geocatlive_usernamesOnServer)
 * @return array ['success' => true, 'accounts' => [...]]
 * @throws BridgeException an answer that is not a page, a cursor that does not advance, or an empty page that is not the last
 */
function geocatlive_listAccountsWith(BridgeClient $client, int $pageSize, array $usernames = []): array
{
    $statuses = class_exists('WHMCS\Service\Status')
        ? ['Pending' => \WHMCS\Service\Status::PENDING, 'Active' => \WHMCS\Service\Status::ACTIVE,
            'Suspended' => \WHMCS\Service\Status::SUSPENDED, 'Terminated' => \WHMCS\Service\Status::TERMINATED]
        : ['Pending' => 'Pending', 'Active' => 'Active', 'Suspended' => 'Suspended', 'Terminated' => 'Terminated'];
    $accounts = [];
    $after = 0;
    do {
        $page = $client->get('/whmcs/v1/accounts', ['after' => $after, 'limit' => max(1, min(1000, $pageSize))]);
        if (!is_array($page['items'] ?? null) || !array_key_exists('next', $page)) {
            throw new BridgeException('GeoCat Live: the bridge\'s accounts answer is not a page (no items or next): update the bridge.', 0, 'invalid_response');
        }
        foreach ($page['items'] as $item) {
            if (!is_array($item) || (int) ($item['service_id'] ?? 0) < 1) {
                continue;
            }
            $instance = geocatlive_text($item['instance'] ?? '');
            $created = is_string($item['created_at'] ?? null) ? strtotime($item['created_at']) : false;
            $accounts[] = [
                'email' => geocatlive_text($item['email'] ?? ''),
                'username' => $instance,
                'domain' => geocatlive_text($item['hostname'] ?? ''),
                'uniqueIdentifier' => $usernames[(int) $item['service_id']] ?? $instance,
                'product' => geocatlive_text($item['product'] ?? ''),
                'primaryip' => '',
                'created' => $created === false ? '' : gmdate('Y-m-d H:i:s', $created),
                'status' => $statuses[$item['whmcs_status'] ?? ''] ?? $statuses['Pending'],
                'service_id' => (int) $item['service_id'],
            ];
        }
        $next = $page['next'];
        if ($next !== null && !$page['items']) {
            // A bridge creeping forward with empty pages would take up to 2^31 requests.
            throw new BridgeException('GeoCat Live: the bridge\'s accounts answer is an empty page with a next page (after ' . $after
                . '); the list was not taken.', 0, 'invalid_response');
        }
        if ($next !== null && (!is_numeric($next) || (int) $next <= $after)) {
            throw new BridgeException('GeoCat Live: the bridge\'s accounts answer did not advance (next ' . geocatlive_text($next)
                . ' after ' . $after . '); the list was not taken.', 0, 'invalid_response');
        }
        $after = $next === null ? null : (int) $next;
    } while ($after !== null);
    return ['success' => true, 'accounts' => $accounts];
}

/**
 * WHMCS service id => username of the services on server $serverId whose username is not empty (WHMCS's
 * tblhosting, one query): how WHMCS names a service in Server Sync and Usage Billing (MetaData's
 * ListAccountsUniqueIdentifierField). [] without a server id.
 *
 * @return array<int, string>
 */
function geocatlive_usernamesOnServer(int $serverId): array
{
    $usernames = [];
    if ($serverId < 1) {
        return $usernames;
    }
    foreach (Capsule::table('tblhosting')->where('server', $serverId)->get(['id', 'username']) as $row) {
        $row = (array) $row;
        $name = trim((string) ($row['username'] ?? ''));
        if ($name !== '' && (int) ($row['id'] ?? 0) > 0) {
            $usernames[(int) $row['id']] = $name;
        }
    }
    return $usernames;
}

/**
 * WHMCS Usage Billing (7.9+): the server's metrics (disk space, memory allocated and backup storage
 * in GB, per service) from the bridge's sampled usage: see lib/MetricsProvider.php.
 *
 * @return \WHMCS\Module\Server\Geocatlive\MetricsProvider a \WHMCS\UsageBilling\Contracts\Metrics\ProviderInterface
 */
function geocatlive_MetricProvider(array $params)
{
    // Loaded here, not at the top: the interface it implements exists in WHMCS 7.9+ only.
    require_once __DIR__ . '/lib/MetricsProvider.php';
    return new \WHMCS\Module\Server\Geocatlive\MetricsProvider($params);
}

/**
 * A paid renewal: nothing to do on the bridge (a service runs until it is suspended or terminated),
 * so it succeeds at once, and the module log says so.
 *
 * @return string 'success'
 */
function geocatlive_Renew(array $params)
{
    if (function_exists('logModuleCall')) {
        logModuleCall('geocatlive', 'Renew', '(not sent)', 'GeoCat Live: nothing to do on renewal of service #' . (int) ($params['serviceid'] ?? 0)
            . ': the service keeps running; nothing was sent to the bridge.', '', geocatlive_secrets($params));
    }
    return 'success';
}

/**
 * Client area function (button "Logs"): a page with the last GEOCATLIVE_LOG_LINES lines of each of the
 * service's services, read from `GET /whmcs/v1/services/{id}/logs` (one request with tail 0 for the
 * list of services, header X-Live-Order-Services, then one per service). The bridge masks the
 * generated passwords; the template escapes every line. An active service only; any failure gives
 * the client a notice in plain words (the detail is in the module log).
 *
 * @return array the page: templatefile templates/logs, breadcrumb, vars.logs
 */
function geocatlive_Logs(array $params)
{
    return geocatlive_logsPage($params, GEOCATLIVE_LOG_PAGE_SECONDS);
}

/**
 * The Logs page, reading no further service once $budgetSeconds have passed (the first one is always read); the
 * services not read are named in the notice.
 *
 * @return array the page (see geocatlive_Logs)
 */
function geocatlive_logsPage(array $params, float $budgetSeconds): array
{
    $started = microtime(true);
    $serviceId = (int) ($params['serviceid'] ?? 0);
    $logs = ['available' => false, 'notice' => '', 'serviceId' => $serviceId, 'lines' => GEOCATLIVE_LOG_LINES, 'services' => []];
    $page = function (array $logs) use ($serviceId) {
        // A custom client area page as client-area-output.md has it: template, breadcrumb, variables.
        return [
            'templatefile' => 'templates/logs',
            'breadcrumb' => ['clientarea.php?action=productdetails&id=' . $serviceId . '&modop=custom&a=Logs' => 'Logs'],
            'vars' => ['logs' => $logs],
        ];
    };
    $refused = geocatlive_clientRefusal($params, 'Logs', 'read', true, 'its logs can be shown');
    if ($refused !== null) {
        $logs['notice'] = preg_replace('/^GeoCat Live: /', '', $refused);
        return $page($logs);
    }
    try {
        $path = '/whmcs/v1/services/' . geocatlive_serviceId($params) . '/logs';
        $client = geocatlive_bridge($params, 'Logs');
        $names = array_slice(array_values(array_filter(array_map('trim', explode(',', (string) ($client->getText($path, ['tail' => 0])['headers']['x-live-order-services'] ?? ''))),
            function ($name) {
                return $name !== '';
            })), 0, GEOCATLIVE_LOG_SERVICES);
        $skipped = [];
        foreach ($names as $index => $name) {
            if ($index > 0 && microtime(true) - $started > $budgetSeconds) {
                $skipped[] = geocatlive_text($name);
                continue;
            }
            $answer = $client->getText($path, ['service' => $name, 'tail' => GEOCATLIVE_LOG_LINES], GEOCATLIVE_LOG_BYTES);
            $lines = explode("\n", rtrim($answer['body'], "\n"));
            if (!empty($answer['cut'])) {
                array_shift($lines); // the oldest line kept is only the end of a line
            }
            $lines = $lines === [''] ? [] : array_slice($lines, -GEOCATLIVE_LOG_LINES);
            $logs['services'][] = ['name' => geocatlive_text($name), 'lines' => array_map('geocatlive_logLine', $lines)];
        }
        $logs['available'] = true;
        if (!$names) {
            $logs['notice'] = 'This service has no logs yet.';
        } elseif ($skipped) {
            $logs['notice'] = 'The logs took too long to read, so these services are not shown: ' . implode(', ', $skipped)
                . '. Please try again in a few minutes.';
        }
    } catch (BridgeException $e) {
        geocatlive_logLocal('Logs', $params, $e);
        $logs['services'] = [];
        if ($e->isOrderNotFound()) {
            $logs['notice'] = 'This service is not set up yet.';
        } elseif ($e->getHttpStatus() === 409) {
            $logs['notice'] = 'This service is not running, so it has no logs to show.';
        } else {
            $logs['notice'] = 'The logs are not available right now; please try again in a few minutes.';
        }
    } catch (\Throwable $e) {
        geocatlive_unexpected('Logs', $params, $e);
        $logs['services'] = [];
        $logs['notice'] = 'The logs are not available right now; please try again in a few minutes.';
    }
    return $page($logs);
}

/** One log line as the Logs page shows it: without its \r, at most GEOCATLIVE_LOG_LINE_CHARS characters (then "… (cut)"). */
function geocatlive_logLine($line): string
{
    $line = rtrim((string) $line, "\r");
    $length = function_exists('mb_strlen') ? mb_strlen($line, 'UTF-8') : strlen($line);
    if ($length <= GEOCATLIVE_LOG_LINE_CHARS) {
        return $line;
    }
    $kept = function_exists('mb_substr') ? mb_substr($line, 0, GEOCATLIVE_LOG_LINE_CHARS, 'UTF-8') : substr($line, 0, GEOCATLIVE_LOG_LINE_CHARS);
    return $kept . ' … (cut: ' . $length . ' characters)';
}

/** True in WHMCS's client area (clientarea.php defines CLIENTAREA; the admin area ADMINAREA). */
function geocatlive_inClientArea(): bool
{
    return defined('CLIENTAREA') && !defined('ADMINAREA');
}

/**
 * The refusal of a client action on a service that is not active, before anything is sent, or null
 * when it may go on. $params['status'] is the service's WHMCS status (Active, Suspended, Pending,
 * Terminated, Cancelled, Fraud, Completed); without one (an older WHMCS) the bridge decides. $check
 * false: no check (staff calls). The message is for the client: no internal detail. It also goes to
 * the module log.
 *
 * @param string $verb   what the action does to the service, as in "cannot be $verb" ("restarted")
 * @param string $phrase the whole "... cannot be ..." phrase when $verb does not fit ("its logs can be shown")
 */
function geocatlive_clientRefusal(array $params, string $action, string $verb, bool $check, string $phrase = ''): ?string
{
    $status = is_scalar($params['status'] ?? null) ? trim((string) $params['status']) : '';
    if (!$check || $status === '' || strcasecmp($status, 'Active') === 0) {
        return null;
    }
    $words = ['pending' => 'not set up yet', 'suspended' => 'suspended', 'terminated' => 'terminated', 'cancelled' => 'cancelled',
        'fraud' => 'not active', 'completed' => 'completed'];
    $state = $words[strtolower($status)] ?? 'not active';
    $message = 'GeoCat Live: this service is ' . $state . ', and ' . ($phrase !== '' ? $phrase : 'it can be ' . $verb)
        . ' only while it is active. Please contact support if you need help.';
    if (function_exists('logModuleCall')) {
        logModuleCall('geocatlive', $action, '(not sent)', $message . ' (WHMCS status: ' . geocatlive_cut($status, 20) . ')', '', geocatlive_secrets($params));
    }
    return $message;
}

/**
 * The service info's `runtime` (issue 15: what runs, from the bridge's mirror of the engine) in words:
 * "running (checked 2026-12-01 10:00 UTC): app running (healthy), db running"; "unknown" without one.
 */
function geocatlive_runtimeText($runtime): string
{
    if (!is_array($runtime)) {
        return 'unknown (the bridge does not report it)';
    }
    $services = [];
    foreach (is_array($runtime['services'] ?? null) ? $runtime['services'] : [] as $service) {
        if (is_array($service)) {
            $health = geocatlive_text($service['health'] ?? '');
            $services[] = geocatlive_text($service['service'] ?? '') . ' ' . geocatlive_text($service['state'] ?? '') . ($health !== '' ? ' (' . $health . ')' : '');
        }
    }
    $observed = geocatlive_when($runtime['observed_at'] ?? '');
    return geocatlive_text($runtime['state'] ?? 'unknown') . ($observed !== '' ? ' (checked ' . $observed . ')' : '')
        . ($services ? ': ' . implode(', ', $services) : '');
}

/**
 * The service info's `drift` (issue 15: the bridge's drift checker) in words: "ok"; "drifted since <time>:
 * app exited (exit code 1)"; "failing since <time>: <reason>; app crash_loop (...)", with the repairs
 * queued; "not checked yet" when null.
 */
function geocatlive_driftText($drift): string
{
    if (!is_array($drift)) {
        return 'not checked yet (no deploy recorded what should run)';
    }
    $state = geocatlive_text($drift['state'] ?? '');
    if ($state === 'ok') {
        return 'ok: what the last deploy made runs';
    }
    $problems = [];
    foreach (is_array($drift['problems'] ?? null) ? $drift['problems'] : [] as $problem) {
        if (is_array($problem)) {
            $detail = geocatlive_text($problem['detail'] ?? '');
            $problems[] = geocatlive_text($problem['service'] ?? '') . ' ' . geocatlive_text($problem['kind'] ?? '') . ($detail !== '' ? ' (' . $detail . ')' : '');
        }
    }
    $since = geocatlive_when($state === 'failing' ? ($drift['failing_since'] ?? '') : ($drift['detected_at'] ?? ''));
    $reason = geocatlive_text($drift['reason'] ?? '');
    $repairs = (int) ($drift['repairs'] ?? 0);
    return $state . ($since !== '' ? ' since ' . $since : '') . ($reason !== '' ? ': ' . $reason : '')
        . ($problems ? ($reason !== '' ? '; ' : ': ') . implode(', ', $problems) : '')
        . ($repairs > 0 ? ' (' . $repairs . ' repair' . ($repairs === 1 ? '' : 's') . ' queued recently)' : '');
}

