<?php
/**
 * A recording stand-in for WHMCS's Capsule (Laravel's query builder on the WHMCS
 * database): table()->where()->update()/get()/first()/pluck() on in-memory rows,
 * every finished query recorded in Capsule::$calls.
 */

namespace WHMCS\Database;

class Capsule
{
    /** @var array[] ['table' => string, 'wheres' => [[column, operator, value]], 'method' => string, 'values' => array] */
    public static $calls = [];

    /** @var array<string, array[]> table name => rows (column => value) */
    public static $tables = [];

    public static function reset(): void
    {
        self::$calls = [];
        self::$tables = [];
    }

    public static function table(string $name): CapsuleQuery
    {
        return new CapsuleQuery($name);
    }

    /** The recorded calls of one method on one table. */
    public static function calls(string $table, string $method): array
    {
        return array_values(array_filter(self::$calls, function ($call) use ($table, $method) {
            return $call['table'] === $table && $call['method'] === $method;
        }));
    }
}

class CapsuleQuery
{
    /** @var string */
    private $table;
    /** @var array[] */
    private $wheres = [];

    public function __construct(string $table)
    {
        $this->table = $table;
    }

    /** where(column, value) or where(column, operator, value); only "=" and "!=" are supported. */
    public function where($column, $operator = null, $value = null): self
    {
        if (func_num_args() === 2) {
            $value = $operator;
            $operator = '=';
        }
        if (!in_array($operator, ['=', '!=', '<>'], true)) {
            throw new \InvalidArgumentException('the Capsule stand-in supports = and != only, not ' . $operator);
        }
        $this->wheres[] = [$column, $operator, $value];
        return $this;
    }

    public function update(array $values): int
    {
        $this->record('update', $values);
        $count = 0;
        foreach (Capsule::$tables[$this->table] ?? [] as $index => $row) {
            if ($this->matches($row)) {
                Capsule::$tables[$this->table][$index] = array_merge($row, $values);
                $count++;
            }
        }
        return $count;
    }

    /**
     * @param string[] $columns only these columns of each row (Laravel's get(['a', 'b'])); default all
     * @return \stdClass[] like Laravel's Collection of rows, iterable
     */
    public function get(array $columns = ['*']): array
    {
        $this->record('get', []);
        return array_values(array_map(function ($row) use ($columns) {
            return (object) ($columns === ['*'] ? $row : array_intersect_key($row, array_flip($columns)));
        }, array_filter(Capsule::$tables[$this->table] ?? [], [$this, 'matches'])));
    }

    public function first()
    {
        $rows = $this->get();
        return $rows ? $rows[0] : null;
    }

    public function pluck(string $column): array
    {
        return array_map(function ($row) use ($column) {
            return $row->$column ?? null;
        }, $this->get());
    }

    private function matches(array $row): bool
    {
        foreach ($this->wheres as list($column, $operator, $value)) {
            // MySQL compares '5' and 5 as equal; so does this.
            $equal = array_key_exists($column, $row) && (string) $row[$column] === (string) $value;
            if ($equal === ($operator !== '=')) {
                return false;
            }
        }
        return true;
    }

    private function record(string $method, array $values): void
    {
        Capsule::$calls[] = ['table' => $this->table, 'wheres' => $this->wheres, 'method' => $method, 'values' => $values];
    }
}
