<?php
/**
 * Recording stand-ins for the WHMCS functions the module and its hooks call.
 */

final class WhmcsRecorder
{
    /** @var array[] logModuleCall() calls, as given and as WHMCS would store them (masked) */
    public static $moduleLog = [];
    /** @var string[] logActivity() messages */
    public static $activity = [];
    /** @var array<string, array[]> hook point => [['priority' => int, 'function' => callable]] */
    public static $hooks = [];

    public static function reset(): void
    {
        self::$moduleLog = [];
        self::$activity = [];
    }

    /** The module log entries of one action. */
    public static function logOf(string $action): array
    {
        return array_values(array_filter(self::$moduleLog, function ($entry) use ($action) {
            return $entry['action'] === $action;
        }));
    }

    /** Everything the module log would store, as one string (masked). */
    public static function storedLog(): string
    {
        return implode("\n", array_map(function ($entry) {
            return implode("\n", [$entry['masked']['request'], $entry['masked']['response'], $entry['masked']['processed']]);
        }, self::$moduleLog));
    }

    /** Runs the hooks of one point like WHMCS's run_hook(), by priority. */
    public static function runHook(string $point, array $vars): array
    {
        $hooks = self::$hooks[$point] ?? [];
        usort($hooks, function ($a, $b) {
            return $a['priority'] <=> $b['priority'];
        });
        $results = [];
        foreach ($hooks as $hook) {
            $results[] = call_user_func($hook['function'], $vars);
        }
        return $results;
    }

    /** WHMCS replaces each value to mask with asterisks in what it stores. */
    public static function mask($data, array $replaceVars): string
    {
        $text = is_string($data) ? $data : print_r($data, true);
        foreach ($replaceVars as $secret) {
            if ((string) $secret !== '') {
                $text = str_replace((string) $secret, str_repeat('*', strlen((string) $secret)), $text);
            }
        }
        return $text;
    }
}

function logModuleCall($module, $action, $requestString, $responseData, $processedData = '', $replaceVars = [])
{
    WhmcsRecorder::$moduleLog[] = [
        'module' => $module,
        'action' => $action,
        'request' => $requestString,
        'response' => $responseData,
        'processed' => $processedData,
        'replaceVars' => $replaceVars,
        'masked' => [
            'request' => WhmcsRecorder::mask($requestString, $replaceVars),
            'response' => WhmcsRecorder::mask($responseData, $replaceVars),
            'processed' => WhmcsRecorder::mask($processedData, $replaceVars),
        ],
    ];
}

function logActivity($description, $userId = 0)
{
    WhmcsRecorder::$activity[] = $description;
}

function add_hook($hookPoint, $priority, $function)
{
    WhmcsRecorder::$hooks[$hookPoint][] = ['priority' => (int) $priority, 'function' => $function];
}
