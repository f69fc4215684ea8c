<?php
/**
 * The Backups section of templates/clientarea.tpl, rendered with Debian's smarty4 as
 * WHMCS renders it, from what geocatlive_clientBackups() builds.
 */

use PHPUnit\Framework\TestCase;

final class BackupsTemplateTest extends TestCase
{
    protected function setUp(): void
    {
        if (!SmartyRenderer::available()) {
            $this->markTestSkipped('smarty4 is not installed (Debian: apt-get install smarty4)');
        }
    }

    private function backup(array $overrides = []): array
    {
        return array_replace(['backup_id' => '20260103T021500Z-0a1b2c3d', 'created_at' => '2026-01-03T02:15:00Z', 'kind' => 'scheduled',
            'size' => 1288490189, 'revision' => 'r3', 'plan' => 'small', 'services' => ['db'], 'artefacts' => [], 'order_id' => 1, 'service_id' => 9001], $overrides);
    }

    /** What geocatlive_ClientArea() returns for an active service with this backups answer and these settings. */
    private function render(array $answer, array $section = []): string
    {
        $info = ['service_id' => 9001, 'instance' => 'river-maps', 'hostname' => 'river-maps.geocat.live', 'status' => 'active',
            'product' => 'busybox-demo', 'plan' => 'small', 'endpoints' => [], 'secrets' => [], 'recent_operations' => []];
        $backups = array_merge(['available' => true, 'notice' => '', 'serviceId' => 9001, 'canBackUp' => true, 'canRestore' => false],
            geocatlive_backupsView($answer), $section);
        unset($backups['restorable']);
        $live = array_merge(geocatlive_serviceView($info), ['available' => true, 'notice' => '', 'backups' => $backups]);
        return SmartyRenderer::render(['templatefile' => 'templates/clientarea', 'vars' => ['live' => $live]]);
    }

    public function testTheBackupsAreListedWithTimeKindAndSize(): void
    {
        $html = $this->render(['backups' => [$this->backup(), $this->backup(['backup_id' => '20260102T174512Z-1b2c3d4e', 'created_at' => '2026-01-02T17:45:12Z',
            'kind' => 'on_demand', 'size' => 52428800])], 'last_success_at' => '2026-01-03T02:15:42Z', 'last_failure' => null]);
        $this->assertStringContainsString('<h4>Backups</h4>', $html);
        $this->assertMatchesRegularExpression('#<td>2026-01-03 02:15 UTC</td>\s*<td>Scheduled</td>\s*<td>1.2 GB</td>\s*</tr>#', $html);
        $this->assertMatchesRegularExpression('#<td>2026-01-02 17:45 UTC</td>\s*<td>On demand</td>\s*<td>50.0 MB</td>\s*</tr>#', $html);
        $this->assertStringContainsString('Last successful backup: 2026-01-03 02:15 UTC.', $html);
        $this->assertStringNotContainsString('failed', $html);
        // "Back up now" posts the module's custom function for this service.
        $this->assertMatchesRegularExpression('#<form method="post" action="clientarea.php\?action=productdetails&amp;id=9001">\s*'
            . '<input type="hidden" name="id" value="9001" />\s*<input type="hidden" name="modop" value="custom" />\s*'
            . '<input type="hidden" name="a" value="BackUpNow" />\s*<button type="submit" class="btn btn-primary btn-sm geocatlive-backup-now">Back up now</button>#', $html);
        // The product does not let clients restore: no Restore form at all.
        $this->assertStringNotContainsString('RestoreBackup', $html);
        $this->assertStringNotContainsString('Restore', $html);
    }

    public function testEachBackupHasARestoreFormWhenTheProductAllowsIt(): void
    {
        $html = $this->render(['backups' => [$this->backup(), $this->backup(['backup_id' => '20260102T174512Z-1b2c3d4e'])]], ['canRestore' => true]);
        $this->assertSame(2, substr_count($html, '<input type="hidden" name="a" value="RestoreBackup" />'));
        $this->assertStringContainsString('<input type="hidden" name="backup_id" value="20260103T021500Z-0a1b2c3d" />', $html);
        $this->assertStringContainsString('<input type="hidden" name="backup_id" value="20260102T174512Z-1b2c3d4e" />', $html);
        $this->assertStringContainsString('onsubmit="return confirm(\'Restore this backup? The current data of the service is replaced by the backup\\\'s;'
            . ' a backup of the current data is taken first.\');"', $html);
        $this->assertStringContainsString('<button type="submit" class="btn btn-default btn-sm geocatlive-restore">Restore</button>', $html);
    }

    public function testALastFailureIsShownAndEscaped(): void
    {
        $html = $this->render(['backups' => [], 'last_success_at' => null,
            'last_failure' => ['at' => '2026-01-02T02:15:09Z', 'kind' => 'scheduled', 'error' => 'the backup storage <b>cannot</b> be used & more']]);
        $this->assertMatchesRegularExpression('#<strong>The last backup attempt failed</strong> \(2026-01-02 02:15 UTC, Scheduled\):\s+'
            . 'the backup storage &lt;b&gt;cannot&lt;/b&gt; be used &amp; more\.#', $html);
        $this->assertStringContainsString('<p><em>No backups yet.</em></p>', $html);
        $this->assertStringNotContainsString('Last successful backup', $html);
    }

    public function testAFailureOlderThanTheLastSuccessIsNotShown(): void
    {
        $html = $this->render(['backups' => [$this->backup()], 'last_success_at' => '2026-01-03T02:15:42Z',
            'last_failure' => ['at' => '2026-01-02T02:15:09Z', 'kind' => 'scheduled', 'error' => 'store down']]);
        $this->assertStringNotContainsString('failed', $html);
        $this->assertStringNotContainsString('store down', $html);
        $this->assertStringContainsString('Last successful backup: 2026-01-03 02:15 UTC.', $html);
    }

    public function testEveryValueOfABackupIsEscaped(): void
    {
        $evil = '<script>alert(1)</script>';
        $html = $this->render(['backups' => [$this->backup(['backup_id' => 'x" onmouseover="alert(1)', 'created_at' => $evil, 'kind' => $evil])],
            'last_failure' => ['at' => $evil, 'kind' => $evil, 'error' => $evil]], ['canRestore' => true]);
        $this->assertStringNotContainsString('<script', $html);
        $this->assertStringNotContainsString('" onmouseover', $html);
        $this->assertStringContainsString('value="x&quot; onmouseover=&quot;alert(1)"', $html);
        $this->assertStringContainsString('<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>', $html);
    }

    public function testWithoutTheListOnlyANoticeAndNoButtons(): void
    {
        $html = $this->render([], ['available' => false, 'notice' => 'The list of backups is not available right now; please try again in a few minutes.',
            'canRestore' => true]);
        $this->assertStringContainsString('<div class="alert alert-info geocatlive-backups-notice" role="status">The list of backups is not available right now;'
            . ' please try again in a few minutes.</div>', $html);
        $this->assertStringNotContainsString('BackUpNow', $html);
        $this->assertStringNotContainsString('RestoreBackup', $html);
        $this->assertStringNotContainsString('No backups yet', $html);
    }

    public function testAServiceThatIsNotActiveGetsNoBackUpNow(): void
    {
        $html = $this->render(['backups' => [$this->backup()]], ['canBackUp' => false, 'canRestore' => false]);
        $this->assertStringContainsString('<td>Scheduled</td>', $html);
        $this->assertStringNotContainsString('BackUpNow', $html);
    }

    public function testWhatTheModuleBuildsRendersAsIs(): void
    {
        // The section exactly as geocatlive_clientBackups() leaves it when the bridge cannot be reached.
        $section = geocatlive_clientBackups(['serviceid' => 9001, 'configoption4' => 'on'], 'active');
        $this->assertFalse($section['available']);
        $this->assertTrue($section['canRestore']);
        $info = ['service_id' => 9001, 'status' => 'active', 'endpoints' => [], 'secrets' => []];
        $html = SmartyRenderer::render(['templatefile' => 'templates/clientarea',
            'vars' => ['live' => array_merge(geocatlive_serviceView($info), ['available' => true, 'notice' => '', 'backups' => $section])]]);
        $this->assertStringContainsString('The list of backups is not available right now', $html);
    }
}
