<?php
/**
 * Stand-ins for the WHMCS classes the module's usage billing (MetricProvider, WHMCS 7.9+) and Server Sync
 * (ListAccounts, 7.8+) use, with the names, namespaces and method signatures of WHMCS's class documentation
 * (developers.whmcs.com/classes: WHMCS\UsageBilling\Contracts\Metrics\{ProviderInterface, MetricInterface,
 * UsageInterface, UsageStubInterface, UnitInterface}, WHMCS\UsageBilling\Metrics\{Metric, NoUsage, Usage}, ...\Metrics\Units\{AbstractUnit,
 * FloatingPoint, Bytes, GigaBytes}; WHMCS\Service\Status). Only what the module calls behaves; WHMCS itself
 * provides the real ones, so these are loaded only by the tests (tests/_bootstrap.php).
 */

namespace WHMCS\UsageBilling\Contracts\Metrics;

interface ProviderInterface
{
    /** @return MetricInterface[] all metrics supported by the provider, keyed by metric system name */
    public function metrics();

    /** @return array all usage of the provider, keyed by tenant id: tenant => MetricInterface[] */
    public function usage();

    /** @return MetricInterface[] */
    public function tenantUsage($tenant);
}

interface MetricInterface
{
    const TYPE_SNAPSHOT = 'snapshot';
    const TYPE_PERIOD_DAY = 'day';
    const TYPE_PERIOD_MONTH = 'month';

    /** @return UsageInterface a UsageStubInterface (NoUsage) when the metric has no usage */
    public function usage();

    public function withUsage(UsageInterface $usage = null);

    /** @return UnitInterface */
    public function units();

    /** @return string */
    public function systemName();

    /** @return string */
    public function displayName();

    /** @return string one of the TYPE_* constants */
    public function type();
}

interface UsageInterface
{
    public function collectedAt();

    public function startAt();

    public function endAt();

    /** @return float */
    public function value();
}

/** A usage that is no measurement (WHMCS's NoUsage of a metric made without one): its value is 0. */
interface UsageStubInterface extends UsageInterface
{
}

interface UnitInterface
{
    const TYPE_CURRENCY = 'currency';
    const TYPE_FLOAT_PRECISION_LOW = 'float_low';
    const TYPE_FLOAT_PRECISION_HIGH = 'float_high';
    const TYPE_INT = 'int';
    const TYPE_MICROTIME = 'microtime';

    public function name();

    public function perUnitName($value = 0);

    public function prefix();

    public function suffix();

    public function type();

    public function decorate($value);

    public function formatForType($value);

    public function roundForType($value);
}

namespace WHMCS\UsageBilling\Metrics;

use WHMCS\UsageBilling\Contracts\Metrics\MetricInterface;
use WHMCS\UsageBilling\Contracts\Metrics\UnitInterface;
use WHMCS\UsageBilling\Contracts\Metrics\UsageInterface;

class Metric implements MetricInterface
{
    private $systemName;
    private $displayName;
    private $type;
    private $units;
    private $usage;

    public function __construct($systemName, $displayName = null, $type = null, UnitInterface $units = null, UsageInterface $usage = null)
    {
        $this->systemName = $systemName;
        $this->displayName = $displayName ?? $systemName;
        $this->type = $type ?? self::TYPE_SNAPSHOT;
        $this->units = $units;
        // As WHMCS's Metric: without a usage, a NoUsage (value 0, collected now), never null.
        $this->usage = $usage ?? new NoUsage();
    }

    public function usage()
    {
        return $this->usage;
    }

    public function withUsage(UsageInterface $usage = null)
    {
        return new static($this->systemName, $this->displayName, $this->type, $this->units, $usage);
    }

    public function units()
    {
        return $this->units;
    }

    public function systemName()
    {
        return $this->systemName;
    }

    public function displayName()
    {
        return $this->displayName;
    }

    public function type()
    {
        return $this->type;
    }
}

class NoUsage implements \WHMCS\UsageBilling\Contracts\Metrics\UsageStubInterface
{
    private $now;

    public function __construct()
    {
        $this->now = time();
    }

    public function collectedAt()
    {
        return $this->now;
    }

    public function startAt()
    {
        return $this->now;
    }

    public function endAt()
    {
        return $this->now;
    }

    public function value()
    {
        return 0;
    }
}

class Usage implements UsageInterface
{
    private $value;
    private $collectedAt;
    private $startAt;
    private $endAt;

    public function __construct($value, $collectedAt = null, $startAt = null, $endAt = null)
    {
        $this->value = (float) $value; // WHMCS casts to double
        $this->collectedAt = is_numeric($collectedAt) ? (int) $collectedAt : time();
        $this->startAt = $startAt;
        $this->endAt = $endAt;
    }

    public function collectedAt()
    {
        return $this->collectedAt;
    }

    public function startAt()
    {
        return $this->startAt;
    }

    public function endAt()
    {
        return $this->endAt;
    }

    public function value()
    {
        return $this->value;
    }
}

namespace WHMCS\UsageBilling\Metrics\Units;

use WHMCS\UsageBilling\Contracts\Metrics\UnitInterface;

abstract class AbstractUnit implements UnitInterface
{
    private $name;
    private $single;
    private $plural;
    private $prefix;
    private $suffix;

    public function __construct($name, $singlePerUnitName = null, $pluralPerUnitName = null, $prefix = null, $suffix = null)
    {
        $this->name = $name;
        $this->single = $singlePerUnitName ?? $name;
        $this->plural = $pluralPerUnitName ?? $name;
        $this->prefix = $prefix;
        $this->suffix = $suffix;
    }

    public function name()
    {
        return $this->name;
    }

    public function perUnitName($value = 0)
    {
        return (float) $value === 1.0 ? $this->single : $this->plural;
    }

    public function prefix()
    {
        return $this->prefix;
    }

    public function suffix()
    {
        return $this->suffix;
    }

    public function decorate($value)
    {
        return trim($this->prefix . $this->formatForType($value) . ' ' . $this->suffix);
    }

    public function roundForType($value)
    {
        return $this->type() === self::TYPE_INT ? (int) round((float) $value) : round((float) $value, 6);
    }

    public function formatForType($value)
    {
        return (string) $this->roundForType($value);
    }

    abstract public function type();
}

class FloatingPoint extends AbstractUnit
{
    public function type()
    {
        return self::TYPE_FLOAT_PRECISION_HIGH;
    }
}

class Bytes extends FloatingPoint
{
    public function __construct($name = 'Bytes', $singlePerUnitName = 'Byte', $pluralPerUnitName = 'Bytes', $prefix = null, $suffix = 'B')
    {
        parent::__construct($name, $singlePerUnitName, $pluralPerUnitName, $prefix, $suffix);
    }
}

class GigaBytes extends Bytes
{
    public function __construct($name = 'Gigabytes', $singlePerUnitName = null, $pluralPerUnitName = null, $prefix = null, $suffix = 'GB')
    {
        parent::__construct($name, $singlePerUnitName, $pluralPerUnitName, $prefix, $suffix);
    }
}

namespace WHMCS\Service;

/** A service's status as WHMCS stores it (tblhosting.domainstatus). */
class Status
{
    const PENDING = 'Pending';
    const ACTIVE = 'Active';
    const SUSPENDED = 'Suspended';
    const TERMINATED = 'Terminated';
    const CANCELLED = 'Cancelled';
    const FRAUD = 'Fraud';
    const COMPLETED = 'Completed';
}
