<?php
/**
 * Finds operations that failed on the bridge after WHMCS's call had returned
 * (the bridge accepted the job, then the worker failed it) and reports each one
 * in WHMCS's activity log. Run by the DailyCronJob hook in hooks.php.
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
                foreach (is_array($answer['failures'] ?? null) ? $answer['failures'] : [] as $failure) {
                    if (is_array($failure)) {
                        call_user_func($logActivity, self::line($failure));
                        $lines++;
                    }
                }
            } catch (\Throwable $e) {
                $reason = $e instanceof BridgeException ? $e->getMessage() : get_class($e) . ': ' . $e->getMessage();
                call_user_func($logActivity, 'GeoCat Live: could not check server ' . $name . ' for failed provisioning: ' . $reason);
                $lines++;
            }
        }
        return $lines;
    }

    /** "GeoCat Live: create of service #N failed: <reason>" */
    public static function line(array $failure): string
    {
        $kind = is_scalar($failure['kind'] ?? null) ? (string) $failure['kind'] : 'operation';
        $error = is_scalar($failure['error'] ?? null) ? trim((string) $failure['error']) : '';
        $line = 'GeoCat Live: ' . $kind . ' of service #' . (int) ($failure['service_id'] ?? 0) . ' failed: ' . ($error !== '' ? $error : 'no reason given');
        if (is_scalar($failure['instance'] ?? null) && (string) $failure['instance'] !== '') {
            $line .= ' (instance ' . $failure['instance'] . ', ' . ($failure['finished_at'] ?? '') . ')';
        }
        return (string) preg_replace('/[\x00-\x1f\x7f]+/', ' ', $line);
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
