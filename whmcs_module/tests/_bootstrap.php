<?php
/**
 * PHPUnit bootstrap: stands in for WHMCS around the GeoCat Live module.
 *
 * WHMCS provides the WHMCS constant, logModuleCall(), logActivity(), add_hook()
 * and WHMCS\Database\Capsule; here they are recording stand-ins (support/whmcs.php),
 * then the module and its hooks are loaded exactly as WHMCS loads them.
 */

error_reporting(E_ALL);
date_default_timezone_set('UTC');

if (!defined('WHMCS')) {
    define('WHMCS', true);
}

define('GEOCATLIVE_MODULE_DIR', dirname(__DIR__) . '/modules/servers/geocatlive');

require_once __DIR__ . '/support/Capsule.php';
require_once __DIR__ . '/support/whmcs.php';
require_once __DIR__ . '/support/UsageBilling.php';
require_once __DIR__ . '/support/WhmcsParams.php';
require_once __DIR__ . '/support/StubServer.php';
require_once __DIR__ . '/support/SmartyRenderer.php';
require_once __DIR__ . '/support/Polling.php';
require_once __DIR__ . '/support/LiveBridgeCase.php';

require_once GEOCATLIVE_MODULE_DIR . '/geocatlive.php';
require_once GEOCATLIVE_MODULE_DIR . '/hooks.php';
