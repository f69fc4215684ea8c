<?php
/**
 * GeoCat Live hooks (WHMCS loads this file by itself).
 *
 * A create (or suspend, change, ...) that the bridge accepted can still fail
 * later in its worker, after the module function returned "success". Once a day
 * this asks every GeoCat Live server for the operations that failed in the last
 * 24 hours and writes one line per failure to the activity log:
 * "GeoCat Live: create of service #N failed: <reason>". Failed backups (scheduled,
 * on demand, or the one taken before a change) start with "GeoCat Live: BACKUP FAILED:",
 * and each server with failed backups gets a summary line (lib/FailureReport.php). Orders the bridge's
 * drift checker calls failing get a "GeoCat Live: FAILING: ..." line each (issue 16).
 */

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

use WHMCS\Module\Server\Geocatlive\FailureReport;

require_once __DIR__ . '/lib/BridgeException.php';
require_once __DIR__ . '/lib/BridgeClient.php';
require_once __DIR__ . '/lib/FailureReport.php';

add_hook('DailyCronJob', 1, function ($vars) {
    try {
        FailureReport::report(FailureReport::servers(), function ($message) {
            logActivity($message);
        }, time() - 86400);
    } catch (\Throwable $e) {
        if (function_exists('logActivity')) {
            logActivity('GeoCat Live: the daily check for failed provisioning did not run: ' . get_class($e) . ': ' . $e->getMessage());
        }
    }
});
