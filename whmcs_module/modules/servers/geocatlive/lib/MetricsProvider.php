<?php
/**
 * WHMCS Usage Billing (7.9+): the metrics of a GeoCat Live server, read from the bridge's
 * `GET /whmcs/v1/usage` (what its worker's usage sampler last measured; one request for every
 * service of the server). geocatlive_MetricProvider returns one, as WHMCS's provisioning-module
 * contract asks (usage-metrics.md): a \WHMCS\UsageBilling\Contracts\Metrics\ProviderInterface.
 *
 * Metrics, all snapshots (MetricInterface::TYPE_SNAPSHOT: the bridge never resets them) in GigaBytes
 * (GiB: the bridge's MB are MiB, divided by 1024):
 * - `disk`: disk space used by the service's volumes (`disk_mb`);
 * - `memory`: memory allocated: the sum of its compose services' memory limits (`memory_limit_mb`), or, when
 *   any of them has no limit (the bridge then sends null), the memory all its containers use (`memory_mb`);
 * - `backups`: backup storage used: the sum of its stored backups' sizes (`backup_mb`).
 * A figure the bridge has not measured yet (null: a new order) is left out of the answer, so WHMCS keeps the
 * service's last value of it (a metric without usage would be stored as 0). Each usage is dated when the
 * bridge measured it (`disk_sampled_at`, `sampled_at`), not when WHMCS asked.
 *
 * Tenants: WHMCS names a service's tenant by the field MetaData's ListAccountsUniqueIdentifierField
 * names, here `username` (the service's username, which the module sends as the instance name). The
 * bridge keys usage by WHMCS service id, so the service ids of this server are mapped to their
 * usernames through WHMCS's own tblhosting (Capsule), never guessed.
 *
 * A failure (the bridge down, a wrong key) is written to the module log; usage() and tenantUsage()
 * then answer no usage (WHMCS keeps what it had) instead of breaking WHMCS's cron.
 */

namespace WHMCS\Module\Server\Geocatlive;

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

use WHMCS\UsageBilling\Contracts\Metrics\MetricInterface;
use WHMCS\UsageBilling\Contracts\Metrics\ProviderInterface;
use WHMCS\UsageBilling\Metrics\Metric;
use WHMCS\UsageBilling\Metrics\Units\GigaBytes;
use WHMCS\UsageBilling\Metrics\Usage;

class MetricsProvider implements ProviderInterface
{
    const DISK = 'disk';
    const MEMORY = 'memory';
    const BACKUPS = 'backups';
    const MB_PER_GB = 1024;

    /** @var array server fields of the module parameters (serverid, serverhostname, serveraccesshash, ...) */
    private $params;
    /** @var BridgeClient|null */
    private $client;

    /**
     * @param array            $params the server's module parameters, as WHMCS passes them to MetricProvider
     * @param BridgeClient|null $client a client to use instead of one made from $params (tests)
     */
    public function __construct(array $params, ?BridgeClient $client = null)
    {
        $this->params = $params;
        $this->client = $client;
    }

    /**
     * @return MetricInterface[] keyed by system name: disk, memory, backups (without usage)
     */
    public function metrics()
    {
        return [
            self::DISK => new Metric(self::DISK, 'Disk space', MetricInterface::TYPE_SNAPSHOT, new GigaBytes()),
            self::MEMORY => new Metric(self::MEMORY, 'Memory allocated', MetricInterface::TYPE_SNAPSHOT, new GigaBytes()),
            self::BACKUPS => new Metric(self::BACKUPS, 'Backup storage', MetricInterface::TYPE_SNAPSHOT, new GigaBytes()),
        ];
    }

    /**
     * Every service of this server the bridge reports: tenant (the service's username) => MetricInterface[].
     * One bridge request, one tblhosting query.
     *
     * @return array
     */
    public function usage()
    {
        try {
            $tenants = $this->tenantsByServiceId();
            if (!$tenants) {
                return [];
            }
            $usage = [];
            foreach ($this->bridgeUsage([]) as $row) {
                $serviceId = (int) ($row['service_id'] ?? 0);
                $metrics = isset($tenants[$serviceId]) ? $this->withUsage($row) : [];
                if ($metrics) {
                    $usage[$tenants[$serviceId]] = $metrics;
                }
            }
            return $usage;
        } catch (\Throwable $e) {
            $this->logFailure('MetricProvider usage', $e);
            return [];
        }
    }

    /**
     * The metrics of one tenant (a service's username on this server), with usage; [] when no service of
     * this server has that username or the bridge has no usage for it.
     *
     * @return MetricInterface[]
     */
    public function tenantUsage($tenant)
    {
        try {
            $ids = array_keys(array_filter($this->tenantsByServiceId(), function ($name) use ($tenant) {
                return $name === (string) $tenant;
            }));
            if (!$ids) {
                return [];
            }
            foreach ($this->bridgeUsage($ids) as $row) {
                return $this->withUsage($row);
            }
            return [];
        } catch (\Throwable $e) {
            $this->logFailure('MetricProvider tenantUsage', $e);
            return [];
        }
    }

    /**
     * The figures of one row of `GET /whmcs/v1/usage`, in GB (null: not measured yet).
     *
     * @return array system name => float|null
     */
    public static function figures(array $row): array
    {
        $gb = function ($mb) {
            return is_numeric($mb) ? max(0.0, (float) $mb) / self::MB_PER_GB : null;
        };
        $memory = is_numeric($row['memory_limit_mb'] ?? null) ? $row['memory_limit_mb'] : ($row['memory_mb'] ?? null);
        return [self::DISK => $gb($row['disk_mb'] ?? null), self::MEMORY => $gb($memory), self::BACKUPS => $gb($row['backup_mb'] ?? null)];
    }

    /**
     * When the row's figures were measured (Unix seconds; null: now): disk at `disk_sampled_at`, memory at
     * `sampled_at`; backups are read when asked (null).
     *
     * @return array system name => int|null
     */
    public static function collectedAt(array $row): array
    {
        $seconds = function ($iso) {
            $time = is_string($iso) && $iso !== '' ? strtotime($iso) : false;
            return $time === false ? null : $time;
        };
        return [self::DISK => $seconds($row['disk_sampled_at'] ?? null), self::MEMORY => $seconds($row['sampled_at'] ?? null), self::BACKUPS => null];
    }

    /**
     * The metrics the row has measured, with their usage (Usage collected when the bridge measured it). A figure not
     * measured yet is left out, not sent without usage: WHMCS stores a metric without usage as 0 (its NoUsage), which
     * would overwrite the service's last snapshot; left out, WHMCS keeps it.
     *
     * @return MetricInterface[]
     */
    private function withUsage(array $row): array
    {
        $figures = self::figures($row);
        $at = self::collectedAt($row);
        $metrics = [];
        foreach ($this->metrics() as $name => $metric) {
            if ($figures[$name] !== null) {
                $metrics[$name] = $metric->withUsage(new Usage($figures[$name], $at[$name]));
            }
        }
        return $metrics;
    }

    /**
     * @param int[] $serviceIds only these services ([]: all)
     * @return array[] the rows of `services`
     * @throws BridgeException
     */
    private function bridgeUsage(array $serviceIds): array
    {
        $client = $this->client ?: BridgeClient::fromServerParams($this->params, BridgeClient::moduleLogger('MetricProvider'));
        $answer = $client->get('/whmcs/v1/usage', $serviceIds ? ['service_id' => $serviceIds] : []);
        if (!isset($answer['services']) || !is_array($answer['services'])) {
            throw new BridgeException('GeoCat Live: the bridge\'s usage answer has no service list.', 0, 'invalid_response');
        }
        return array_values(array_filter($answer['services'], 'is_array'));
    }

    /** @return array service id => username, of this server's services in WHMCS */
    private function tenantsByServiceId(): array
    {
        $serverId = (int) ($this->params['serverid'] ?? 0);
        if ($serverId < 1) {
            throw new BridgeException('GeoCat Live: usage billing without a server id.', 0, 'configuration');
        }
        return geocatlive_usernamesOnServer($serverId);
    }

    private function logFailure(string $action, \Throwable $e): void
    {
        $message = $e instanceof BridgeException ? $e->getMessage() : 'GeoCat Live: unexpected error (' . get_class($e) . ': ' . $e->getMessage() . ').';
        if (function_exists('logModuleCall')) {
            $secrets = [];
            foreach (['serveraccesshash', 'serverpassword'] as $key) {
                if (isset($this->params[$key]) && is_scalar($this->params[$key]) && strlen((string) $this->params[$key]) >= 4) {
                    $secrets[] = (string) $this->params[$key];
                }
            }
            logModuleCall('geocatlive', $action, '(usage billing)', $message, '', $secrets);
        }
    }
}
