<?php
/**
 * Renders the module's client area template with Debian's smarty4, the way WHMCS
 * does: the ClientArea vars assigned, templates/<name>.tpl from the module folder.
 */

final class SmartyRenderer
{
    const SMARTY_CLASS = '/usr/share/php/smarty4/Smarty.class.php';

    public static function available(): bool
    {
        return class_exists('Smarty', false) || is_file(self::smartyClass());
    }

    /**
     * @param array $clientArea what geocatlive_ClientArea() returned
     */
    public static function render(array $clientArea): string
    {
        if (!class_exists('Smarty', false)) {
            require_once self::smartyClass();
        }
        $compileDir = sys_get_temp_dir() . '/geocatlive-smarty-' . getmypid();
        if (!is_dir($compileDir)) {
            mkdir($compileDir);
            register_shutdown_function(function () use ($compileDir) {
                foreach (glob($compileDir . '/*') ?: [] as $file) {
                    unlink($file);
                }
                rmdir($compileDir);
            });
        }
        $smarty = new \Smarty();
        $smarty->setTemplateDir(GEOCATLIVE_MODULE_DIR);
        $smarty->setCompileDir($compileDir);
        $smarty->setCacheDir($compileDir);
        $smarty->error_reporting = E_ALL;
        foreach ($clientArea['vars'] as $name => $value) {
            $smarty->assign($name, $value);
        }
        return $smarty->fetch($clientArea['templatefile'] . '.tpl');
    }

    private static function smartyClass(): string
    {
        return getenv('SMARTY_CLASS') ?: self::SMARTY_CLASS;
    }
}
