<?php
/**
 * Finds operations that failed on the bridge after WHMCS's call had returned
 * (the bridge accepted the job, then the worker failed it) and reports each one
 * in WHMCS's activity log. Run by the DailyCronJob hook in hooks.php.
 *
 * Failed backups (issue 13) are operations too: a scheduled or on-demand backup
 * (kind `backup`), and a change of plan or an upgrade that failed at the backup
 * the bridge takes before every change. Their lines say so, and each server with
 * failed backups gets one more line that sums them up, so a silent run of failing
 * backups cannot hide among provisioning errors.
 *
 * Failing orders (issue 15's drift checker, `failing_orders`: a crash loop, or drift again after its
 * repairs) get a line each, whenever they began failing: the bridge redeploys none of them until an
 * operation succeeds on it, so a person must look ("GeoCat Live: FAILING: service #N ...").
 */

namespace WHMCS\Module\Server\Geocatlive;

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

use WHMCS\Database\Capsule;

class FailureReport
{
    /**
     * The enabled GeoCat Live servers, as the server fields of module parameters.
     *
     * @return array[]
     */
    public static function servers(): array
    {
        $servers = [];
        $rows = Capsule::table('tblservers')->where('type', 'geocatlive')->where('disabled', 0)->get();
        foreach ($rows as $row) {
            $row = (array) $row;
            $servers[] = [
                'serverid' => (int) ($row['id'] ?? 0),
                'servername' => (string) ($row['name'] ?? ''),
                'serverhostname' => (string) ($row['hostname'] ?? ''),
                'serverip' => (string) ($row['ipaddress'] ?? ''),
                'serverport' => (string) ($row['port'] ?? ''),
                'serversecure' => $row['secure'] ?? '',
                'serveraccesshash' => self::accessHash((string) ($row['accesshash'] ?? '')),
                'serverpassword' => self::decrypt((string) ($row['password'] ?? '')),
            ];
        }
        return $servers;
    }

    /**
     * Writes one line per failure since $since (a Unix time) to $logActivity, and one
     * line per server that could not be asked. Servers with the same bridge URL are
     * asked once.
     *
     * @param array[]  $servers     server fields of module parameters
     * @param callable $logActivity function (string $message): void
     * @return int the number of lines written
     */
    public static function report(array $servers, callable $logActivity, int $since): int
    {
        $sinceIso = gmdate('Y-m-d\TH:i:s\Z', $since);
        $asked = [];
        $lines = 0;
        foreach ($servers as $server) {
            $name = (string) ($server['servername'] ?? '') !== '' ? $server['servername'] : '#' . ($server['serverid'] ?? '?');
            try {
                $client = BridgeClient::fromServerParams($server, BridgeClient::moduleLogger('DailyCronJob'));
                if (isset($asked[$client->baseUrl()])) {
                    continue;
                }
                $asked[$client->baseUrl()] = true;
                $answer = $client->get('/whmcs/v1/failures', ['since' => $sinceIso]);
                $backupServices = [];
                $backupFailures = 0;
                foreach (is_array($answer['failures'] ?? null) ? $answer['failures'] : [] as $failure) {
                    if (is_array($failure)) {
                        call_user_func($logActivity, self::line($failure));
                        $lines++;
                        if (self::backupFailure($failure) !== '') {
                            $backupFailures++;
                            $backupServices['#' . (int) ($failure['service_id'] ?? 0)] = true;
                        }
                    }
                }
                foreach (is_array($answer['failing_orders'] ?? null) ? $answer['failing_orders'] : [] as $failing) {
                    if (is_array($failing)) {
                        call_user_func($logActivity, self::failingLine($failing));
                        $lines++;
                    }
                }
                if ($backupFailures > 0) {
                    call_user_func($logActivity, 'GeoCat Live: ' . $backupFailures . ' failed backup' . ($backupFailures === 1 ? '' : 's') . ' since ' . $sinceIso
                        . ' on server ' . $name . ' (service' . (count($backupServices) === 1 ? ' ' : 's ') . implode(', ', array_keys($backupServices))
                        . '): those services may have no recent backup. `flask --app wsgi live doctor` on the bridge checks the backup store;'
                        . ' "Back up now" on a service\'s page takes a new one.');
                    $lines++;
                }
            } catch (\Throwable $e) {
                $reason = $e instanceof BridgeException ? $e->getMessage() : get_class($e) . ': ' . $e->getMessage();
                call_user_func($logActivity, 'GeoCat Live: could not check server ' . $name . ' for failed provisioning: ' . $reason);
                $lines++;
            }
        }
        return $lines;
    }

    /**
     * "GeoCat Live: create of service #N failed: <reason>"; for backups
     * "GeoCat Live: BACKUP FAILED: backup of service #N failed, no new backup was taken: <reason>" and
     * "GeoCat Live: BACKUP FAILED: change_plan of service #N failed at the backup before the change: <reason>".
     */
    public static function line(array $failure): string
    {
        $kind = is_scalar($failure['kind'] ?? null) ? (string) $failure['kind'] : 'operation';
        $error = is_scalar($failure['error'] ?? null) ? trim((string) $failure['error']) : '';
        $reason = $error !== '' ? $error : 'no reason given';
        $service = 'service #' . (int) ($failure['service_id'] ?? 0);
        $backup = self::backupFailure($failure);
        if ($backup === 'backup') {
            $line = 'GeoCat Live: BACKUP FAILED: ' . self::backupKind($failure) . 'backup of ' . $service . ' failed, no new backup was taken: ' . $reason;
        } elseif ($backup === 'pre_change') {
            $line = 'GeoCat Live: BACKUP FAILED: ' . $kind . ' of ' . $service . ' failed at the backup before the change: ' . $reason;
        } else {
            $line = 'GeoCat Live: ' . $kind . ' of ' . $service . ' failed: ' . $reason;
        }
        if (is_scalar($failure['instance'] ?? null) && (string) $failure['instance'] !== '') {
            $line .= ' (instance ' . $failure['instance'] . ', ' . ($failure['finished_at'] ?? '') . ')';
        }
        return (string) preg_replace('/[\x00-\x1f\x7f]+/', ' ', $line);
    }

    /**
     * "GeoCat Live: FAILING: service #N (instance x) is failing since <time>: <reason> (app crash_loop: ...).
     * The bridge does not repair it until an operation succeeds on it: ..." for an entry of `failing_orders`.
     */
    public static function failingLine(array $failing): string
    {
        $problems = [];
        foreach (is_array($failing['problems'] ?? null) ? $failing['problems'] : [] as $problem) {
            if (is_array($problem)) {
                $problems[] = trim(implode(' ', array_filter([
                    is_scalar($problem['service'] ?? null) ? (string) $problem['service'] : '',
                    is_scalar($problem['kind'] ?? null) ? (string) $problem['kind'] : '',
                ], 'strlen')) . (is_scalar($problem['detail'] ?? null) && (string) $problem['detail'] !== '' ? ': ' . $problem['detail'] : ''));
            }
        }
        $reason = is_scalar($failing['reason'] ?? null) ? trim((string) $failing['reason']) : '';
        $instance = is_scalar($failing['instance'] ?? null) && (string) $failing['instance'] !== '' ? ' (instance ' . $failing['instance'] . ')' : '';
        $line = 'GeoCat Live: FAILING: service #' . (int) ($failing['service_id'] ?? 0) . $instance . ' is failing since '
            . (is_scalar($failing['failing_since'] ?? null) ? (string) $failing['failing_since'] : '?') . ': ' . ($reason !== '' ? $reason : 'no reason given')
            . ($problems ? ' (' . implode('; ', $problems) . ')' : '')
            . '. The bridge does not repair it until an operation succeeds on it: look at the service\'s page (GeoCat Live drift),'
            . ' then Redeploy or Restart it.';
        return (string) preg_replace('/[\x00-\x1f\x7f]+/', ' ', $line);
    }

    /**
     * What kind of backup failure an entry of /whmcs/v1/failures is: 'backup' (a backup operation),
     * 'pre_change' (a change of plan or an upgrade whose backup before the change failed: its
     * `backup_kind` says pre_change, or, from a bridge that does not send it, its public error
     * names the backup), or '' (not a backup failure).
     */
    public static function backupFailure(array $failure): string
    {
        $kind = is_scalar($failure['kind'] ?? null) ? (string) $failure['kind'] : '';
        if ($kind === 'backup') {
            return 'backup';
        }
        if (in_array($kind, ['change_plan', 'upgrade'], true)) {
            $backupKind = is_scalar($failure['backup_kind'] ?? null) ? (string) $failure['backup_kind'] : '';
            $error = is_scalar($failure['error'] ?? null) ? (string) $failure['error'] : '';
            if ($backupKind === 'pre_change' || ($backupKind === '' && stripos($error, 'backup') !== false)) {
                return 'pre_change';
            }
        }
        return '';
    }

    /** "scheduled " or "on_demand " when the entry says which backup it was (backup_kind), else "". */
    private static function backupKind(array $failure): string
    {
        $kind = is_scalar($failure['backup_kind'] ?? null) ? (string) $failure['backup_kind'] : '';
        return preg_match('/^[a-z_]{1,32}$/', $kind) === 1 ? str_replace('_', '-', $kind) . ' ' : '';
    }

    /** tblservers.password is encrypted with WHMCS's key. */
    private static function decrypt(string $stored): string
    {
        if ($stored === '') {
            return '';
        }
        if (function_exists('localAPI')) {
            $result = localAPI('DecryptPassword', ['password2' => $stored]);
            if (is_array($result) && ($result['result'] ?? '') === 'success') {
                return (string) ($result['password'] ?? '');
            }
        }
        if (function_exists('decrypt')) {
            return (string) decrypt($stored);
        }
        return $stored;
    }

    /** The access hash as stored; decrypted when it is not a bridge key as such. */
    private static function accessHash(string $stored): string
    {
        $stored = trim($stored);
        if ($stored === '' || strncmp($stored, 'live_', 5) === 0) {
            return $stored;
        }
        $decrypted = trim(self::decrypt($stored));
        return strncmp($decrypted, 'live_', 5) === 0 ? $decrypted : $stored;
    }
}
