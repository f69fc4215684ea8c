<?php
/**
 * Polling with a deadline, for the tests against the real bridge (no sleeps that guess how long work takes).
 */

use PHPUnit\Framework\Assert;

final class Polling
{
    /**
     * Calls $probe until it answers something other than null, for at most $seconds; fails the test naming $what.
     *
     * @return mixed what $probe answered
     */
    public static function eventually(callable $probe, int $seconds, string $what)
    {
        $deadline = microtime(true) + $seconds;
        while (($value = $probe()) === null) {
            if (microtime(true) > $deadline) {
                Assert::fail('not within ' . $seconds . ' s: ' . $what);
            }
            usleep(250000);
        }
        return $value;
    }
}
