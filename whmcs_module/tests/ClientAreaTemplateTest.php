<?php
/**
 * templates/clientarea.tpl rendered with Debian's smarty4, as WHMCS renders it.
 */

use PHPUnit\Framework\TestCase;

final class ClientAreaTemplateTest extends TestCase
{
    protected function setUp(): void
    {
        if (!SmartyRenderer::available()) {
            $this->markTestSkipped('smarty4 is not installed (Debian: apt-get install smarty4)');
        }
    }

    /** What geocatlive_ClientArea() returns for a service, built from a bridge answer. */
    private function clientArea(array $info): array
    {
        return ['templatefile' => 'templates/clientarea', 'vars' => ['live' => array_merge(geocatlive_serviceView($info), ['available' => true, 'notice' => ''])]];
    }

    private function info(array $overrides = []): array
    {
        return array_replace([
            'service_id' => 9001, 'instance' => 'river-maps', 'hostname' => 'river-maps.geocat.live', 'status' => 'active',
            'product' => 'busybox-demo', 'plan' => 'small', 'revision' => 'r1',
            'endpoints' => [['application' => 'geoserver', 'service' => 'web', 'url' => 'https://river-maps.geocat.live/geoserver?a=1&b=2', 'local_url' => null]],
            'operation' => ['id' => 1, 'kind' => 'create', 'state' => 'succeeded', 'attempts' => 1, 'max_attempts' => 5, 'steps' => [], 'error' => null],
            'last_error' => null,
            'secrets' => ['DB_PASSWORD' => 'p<a>ss&word"'],
            'recent_operations' => [],
        ], $overrides);
    }

    public function testAnActiveServiceShowsStatusLinksAndCredentials(): void
    {
        $html = SmartyRenderer::render($this->clientArea($this->info()));
        $this->assertStringContainsString('<span class="label label-success badge badge-success geocatlive-status">Active</span>', $html);
        $this->assertStringContainsString('<td>river-maps.geocat.live</td>', $html);
        $this->assertStringContainsString('<td>busybox-demo, plan small</td>', $html);
        $this->assertStringContainsString('geoserver:', $html);
        $this->assertStringContainsString('<a href="https://river-maps.geocat.live/geoserver?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">'
            . 'https://river-maps.geocat.live/geoserver?a=1&amp;b=2</a>', $html, 'escaped once, not twice');
        $this->assertStringContainsString('<th scope="row">DB_PASSWORD</th>', $html);
        $this->assertStringContainsString('<code>p&lt;a&gt;ss&amp;word&quot;</code>', $html);
        $this->assertStringNotContainsString('in progress', $html);
        $this->assertStringNotContainsString('Last error', $html);
    }

    /** Issue 10: a local URL may lead to another customer's stack once the port is reused; customers never see one. */
    public function testLocalUrlsAreNeverShownEvenIfABridgeSendsThem(): void
    {
        $info = $this->info(['endpoints' => [['application' => 'geoserver', 'service' => 'web',
            'url' => 'https://river-maps.geocat.live/geoserver', 'local_url' => 'http://127.0.0.1:20001/geoserver']]]);
        $view = geocatlive_serviceView($info);
        $this->assertSame([['application' => 'geoserver', 'service' => 'web', 'url' => 'https://river-maps.geocat.live/geoserver']],
            $view['endpoints']);
        $html = SmartyRenderer::render($this->clientArea($info));
        $this->assertStringContainsString('https://river-maps.geocat.live/geoserver', $html);
        $this->assertStringNotContainsString('127.0.0.1', $html);
        $this->assertStringNotContainsString('20001', $html);
    }

    public function testARunningOperationShowsItsProgressAndTheLastError(): void
    {
        $html = SmartyRenderer::render($this->clientArea($this->info([
            'status' => 'pending',
            'operation' => ['id' => 2, 'kind' => 'create', 'state' => 'running', 'attempts' => 2, 'max_attempts' => 5, 'error' => null,
                'steps' => [['message' => 'create db'], ['message' => 'wait for health: db']]],
            'last_error' => 'health check of db timed out',
        ])));
        $this->assertStringContainsString('Being set up</span>', $html);
        $this->assertMatchesRegularExpression('#<strong>Create in progress</strong>\s+\(running, attempt 2 of 5, 2 steps done\):\s+wait for health: db\.#', $html);
        $this->assertStringContainsString('<strong>Last error:</strong> health check of db timed out', $html);
    }

    public function testEveryValueFromTheBridgeIsEscaped(): void
    {
        $evil = '<script>alert(1)</script>';
        $html = SmartyRenderer::render($this->clientArea($this->info([
            'hostname' => $evil, 'plan' => $evil, 'product' => $evil, 'last_error' => $evil, 'secrets' => [$evil => $evil],
            'endpoints' => [['application' => $evil, 'url' => 'javascript:alert(1)'], ['application' => 'web', 'url' => 'https://x.example/"><script>']],
            'operation' => ['kind' => $evil, 'state' => 'running', 'attempts' => 1, 'max_attempts' => 5, 'steps' => [['message' => $evil]]],
        ])));
        $this->assertStringNotContainsString('<script', $html);
        $this->assertStringNotContainsString('javascript:', $html);
        $this->assertStringContainsString('&lt;script&gt;alert(1)&lt;/script&gt;', $html);
        $this->assertStringContainsString('href="https://x.example/&quot;&gt;&lt;script&gt;"', $html);
        $this->assertStringContainsString('<em>no address yet</em>', $html);
    }

    public function testWithoutTheBridgeOnlyANoticeIsShown(): void
    {
        $html = SmartyRenderer::render(geocatlive_ClientArea([]));
        $this->assertStringContainsString('<div class="alert alert-info" role="status">The service details are not available right now; please try again in a few minutes.</div>', $html);
        $this->assertStringNotContainsString('<table', $html);
    }
}
