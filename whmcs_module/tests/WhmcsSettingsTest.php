<?php
/**
 * What WHMCS admins type into the server and product settings (issue 9, items 8
 * and 10), without a bridge: the bridge URL built from the server fields, the
 * loopback rule, and the plan, product and domain the module sends.
 */

use PHPUnit\Framework\TestCase;
use WHMCS\Module\Server\Geocatlive\BridgeClient;
use WHMCS\Module\Server\Geocatlive\BridgeException;

final class WhmcsSettingsTest extends TestCase
{
    /** The conflict message for https:// written in the address with "Secure" unticked. */
    private static function httpsWithoutSecure(string $field, string $address): string
    {
        return 'GeoCat Live: the server\'s ' . $field . ' "' . $address . '" says https, but the server\'s "Secure" box is not ticked; nothing was sent'
            . ' (the API key never goes over plain http to an address written with https://). Tick "Secure" on the server (System Settings > Servers)'
            . ' and check its Port (443, or the bridge\'s https port).';
    }

    /** The conflict message for http:// written in the address with "Secure" ticked. */
    private static function httpWithSecure(string $field, string $address): string
    {
        return 'GeoCat Live: the server\'s ' . $field . ' "' . $address . '" says plain http, but the server\'s "Secure" box is ticked; nothing was sent.'
            . ' Remove "http://" from the ' . $field . ' to connect over https, or untick "Secure" (and set the Port, e.g. 8000) if the bridge only speaks'
            . ' plain http on this host or a private network (System Settings > Servers).';
    }

    /**
     * Scheme typed in the hostname x "Secure" tick (in the forms WHMCS uses) x port.
     * Without a scheme the tick decides; a scheme that agrees with the tick changes
     * nothing; one that contradicts it is an error, whatever the port.
     */
    public static function schemeTickPortMatrix(): array
    {
        $ticks = ['ticked (true)' => true, 'ticked ("on")' => 'on', 'ticked ("1")' => '1', 'ticked ("checked")' => 'checked',
                  'unticked (false)' => false, 'unticked ("")' => '', 'unticked ("0")' => '0'];
        $ports = ['' => ['https' => '', 'http' => ':8000'], '443' => ['https' => '', 'http' => ':443'],
                  '8000' => ['https' => ':8000', 'http' => ':8000'], '80' => ['https' => ':80', 'http' => '']];
        $cases = [];
        foreach (['' => '', 'https://' => 'https', 'HTTPS://' => 'https', 'http://' => 'http', 'Http://' => 'http'] as $typed => $scheme) {
            foreach ($ticks as $tickName => $tick) {
                $secure = BridgeClient::isSecureFlag($tick);
                foreach ($ports as $port => $suffix) {
                    $address = $typed . 'bridge.example';
                    if ($scheme === 'https' && !$secure) {
                        $expected = ['error' => self::httpsWithoutSecure('Hostname', $address)];
                    } elseif ($scheme === 'http' && $secure) {
                        $expected = ['error' => self::httpWithSecure('Hostname', $address)];
                    } else {
                        $expected = ['url' => ($secure ? 'https' : 'http') . '://bridge.example' . $suffix[$secure ? 'https' : 'http']];
                    }
                    $cases[sprintf('"%s", %s, port "%s"', $address, $tickName, $port)] = [
                        ['serverhostname' => $address, 'serversecure' => $tick, 'serverport' => $port], $expected];
                }
            }
        }
        return $cases;
    }

    /**
     * @dataProvider schemeTickPortMatrix
     */
    public function testTheSchemeInTheHostnameMustAgreeWithTheSecureTick(array $server, array $expected): void
    {
        if (isset($expected['url'])) {
            $this->assertSame($expected['url'], BridgeClient::baseUrlFromServerParams($server));
            return;
        }
        try {
            BridgeClient::baseUrlFromServerParams($server);
            $this->fail('a scheme that contradicts the "Secure" tick is refused');
        } catch (BridgeException $e) {
            $this->assertSame($expected['error'], $e->getMessage());
            $this->assertSame('configuration', $e->getErrorCode());
            $this->assertFalse($e->isOrderNotFound());
        }
    }

    public static function otherServerSettings(): array
    {
        return [
            // WHMCS 8 passes serverhttpprefix, derived from the tick; either saying https is https.
            'serverhttpprefix https without serversecure' => [['serverhostname' => 'bridge.example', 'serverhttpprefix' => 'https'], 'https://bridge.example'],
            'serverhttpprefix http, Secure ticked' => [['serverhostname' => 'bridge.example', 'serversecure' => 'on', 'serverhttpprefix' => 'http'], 'https://bridge.example'],
            'https:// with serverhttpprefix https' => [['serverhostname' => 'https://bridge.example', 'serversecure' => '', 'serverhttpprefix' => 'https',
                'serverport' => '443'], 'https://bridge.example'],
            'path prefix' => [['serverhostname' => 'live.example.org/bridge', 'serversecure' => 'on'], 'https://live.example.org/bridge'],
            'path prefix, scheme and slashes' => [['serverhostname' => ' https://live.example.org//bridge/v/ ', 'serversecure' => 'on', 'serverport' => '8443'],
                'https://live.example.org:8443/bridge/v'],
            'http:// and plain http agree' => [['serverhostname' => 'http://127.0.0.1/live', 'serversecure' => '', 'serverport' => '8000'], 'http://127.0.0.1:8000/live'],
            'scheme in the IP Address field' => [['serverhostname' => '', 'serverip' => 'https://192.0.2.7', 'serversecure' => true, 'serverport' => '443'], 'https://192.0.2.7'],
            'ipv6 in brackets' => [['serverhostname' => '[::1]', 'serverport' => '8000'], 'http://[::1]:8000'],
            'ipv6 with a scheme' => [['serverhostname' => 'http://[2001:db8::5]/', 'serverport' => '8000'], 'http://[2001:db8::5]:8000'],
            'the hostname wins over the IP address' => [['serverhostname' => 'bridge.example', 'serverip' => '10.0.0.5', 'serversecure' => 'on'], 'https://bridge.example'],
            'a port that is no port' => [['serverhostname' => 'bridge.example', 'serversecure' => 'on', 'serverport' => '99999'], 'https://bridge.example'],
        ];
    }

    /**
     * @dataProvider otherServerSettings
     */
    public function testOtherServerSettings(array $server, string $expected): void
    {
        $this->assertSame($expected, BridgeClient::baseUrlFromServerParams($server));
    }

    public static function refusedServerSettings(): array
    {
        return [
            'https:// in the IP Address field, Secure unticked' => [['serverhostname' => '', 'serverip' => 'https://10.0.0.5', 'serversecure' => ''],
                self::httpsWithoutSecure('IP Address', 'https://10.0.0.5')],
            'http:// in the IP Address field, Secure ticked' => [['serverhostname' => '', 'serverip' => 'http://10.0.0.5', 'serversecure' => 'on'],
                self::httpWithSecure('IP Address', 'http://10.0.0.5')],
            'another scheme' => [['serverhostname' => 'ftp://bridge.example', 'serversecure' => 'on'],
                'GeoCat Live: the server\'s Hostname "ftp://bridge.example" starts with "ftp://", which cannot reach the bridge; nothing was sent.'
                . ' Write the host name alone (e.g. live.example.org, or live.example.org/bridge behind a path prefix) and use the "Secure" tick for https'
                . ' (System Settings > Servers).'],
            'tcp scheme, unticked' => [['serverhostname' => 'tcp://127.0.0.1'], 'starts with "tcp://", which cannot reach the bridge'],
            'a port in the hostname' => [['serverhostname' => 'https://bridge.example:8443/live', 'serversecure' => 'on'],
                'GeoCat Live: the server\'s Hostname "https://bridge.example:8443/live" contains a port, but the port has its own field:'
                . ' write bridge.example/live in the Hostname and 8443 in the Port (System Settings > Servers).'],
            'a port after an ipv6 address' => [['serverhostname' => '[::1]:8000'], 'write [::1] in the Hostname and 8000 in the Port'],
            'a query in the path' => [['serverhostname' => 'bridge.example/live?x=1', 'serversecure' => 'on'], 'has a path with characters a URL path cannot hold'],
            'only a scheme' => [['serverhostname' => 'https://', 'serversecure' => 'on'], 'the server has no hostname or IP address'],
        ];
    }

    /**
     * @dataProvider refusedServerSettings
     */
    public function testRefusedServerSettingsNameTheSettingToFix(array $server, string $expected): void
    {
        try {
            BridgeClient::baseUrlFromServerParams($server);
            $this->fail('refused');
        } catch (BridgeException $e) {
            $this->assertStringContainsString($expected, $e->getMessage());
            $this->assertStringStartsWith('GeoCat Live: ', $e->getMessage());
            $this->assertSame('configuration', $e->getErrorCode());
        }
    }

    public function testCredentialsTypedIntoTheHostnameAreNotRepeated(): void
    {
        try {
            BridgeClient::baseUrlFromServerParams(['serverhostname' => 'https://admin:s3cr3t-pw@bridge.example/live', 'serversecure' => '']);
            $this->fail('refused');
        } catch (BridgeException $e) {
            $this->assertSame(self::httpsWithoutSecure('Hostname', 'https://...@bridge.example/live'), $e->getMessage());
            $this->assertStringNotContainsString('s3cr3t-pw', $e->getMessage());
        }
        $this->expectExceptionMessage('is not a valid host name');
        BridgeClient::baseUrlFromServerParams(['serverhostname' => 'admin:s3cr3t-pw@bridge.example', 'serversecure' => 'on']);
    }

    public static function loopbackHosts(): array
    {
        return [
            '127.0.0.1' => ['127.0.0.1', true], '127.1.2.3' => ['127.1.2.3', true], '127.255.255.254' => ['127.255.255.254', true],
            '::1' => ['::1', true], '[::1]' => ['[::1]', true], 'long ::1' => ['[0:0:0:0:0:0:0:1]', true], 'mapped 127.0.0.1' => ['::ffff:127.0.0.1', true],
            'localhost' => ['localhost', true], 'LOCALHOST' => ['LOCALHOST', true], 'Localhost with spaces' => [' Localhost ', true],
            '10.0.0.5' => ['10.0.0.5', false], 'bridge.example' => ['bridge.example', false], '128.0.0.1' => ['128.0.0.1', false],
            '0.0.0.0' => ['0.0.0.0', false], '::2' => ['::2', false], 'mapped 10.0.0.5' => ['::ffff:10.0.0.5', false], 'fe80::1' => ['[fe80::1]', false],
            'localhost.example' => ['localhost.example', false], 'my-localhost' => ['my-localhost', false], '127.0.0.1.nip.io' => ['127.0.0.1.nip.io', false],
            'empty' => ['', false],
        ];
    }

    /**
     * @dataProvider loopbackHosts
     */
    public function testLoopbackHosts(string $host, bool $loopback): void
    {
        $this->assertSame($loopback, BridgeClient::isLoopbackHost($host));
    }

    public function testTheClientKnowsWhetherItsBridgeIsOnThisHost(): void
    {
        $this->assertTrue((new BridgeClient('http://[::1]:8000/live', 'live_x'))->isLoopback());
        $this->assertTrue((new BridgeClient('http://LOCALHOST:8000', 'live_x'))->isLoopback());
        $this->assertFalse((new BridgeClient('http://10.0.0.5:8000', 'live_x'))->isLoopback());
        $this->assertFalse((new BridgeClient('https://127.0.0.1.example.org', 'live_x'))->isLoopback());
    }

    public static function plans(): array
    {
        return [
            'the product\'s plan' => [['configoption2' => 'small'], 'small'],
            'the product\'s plan, trimmed' => [['configoption2' => "  Small \t"], 'Small'],
            'the option overrides it' => [['configoption2' => 'small', 'configoptions' => ['Plan' => 'Gold']], 'Gold'],
            'the option, trimmed, case kept for the bridge' => [['configoption2' => 'small', 'configoptions' => ['Plan' => ' gold ']], 'gold'],
            'value|display name, as an API call may pass it' => [['configoption2' => 'small', 'configoptions' => ['Plan' => 'large|Large, 4 workers']], 'large'],
            '"1|Gold": the value is 1' => [['configoption2' => 'small', 'configoptions' => ['Plan' => '1|Gold']], '1'],
            'option named in lower case' => [['configoption2' => 'small', 'configoptions' => ['plan' => 'large']], 'large'],
            'option name with a display name and spaces' => [['configoption2' => 'small', 'configoptions' => [' Plan |Service plan' => 'large']], 'large'],
            'empty option: the product\'s plan' => [['configoption2' => 'small', 'configoptions' => ['Plan' => '  ', 'Disk' => '10']], 'small'],
            'the first option that is not empty' => [['configoption2' => 'small', 'configoptions' => ['Plan' => '', 'plan' => 'large']], 'large'],
            'another option' => [['configoption2' => 'small', 'configoptions' => ['Planet' => 'large']], 'small'],
            'a value that is no text' => [['configoption2' => 'small', 'configoptions' => ['Plan' => ['large']]], 'small'],
        ];
    }

    /**
     * @dataProvider plans
     */
    public function testThePlanSent(array $params, string $expected): void
    {
        $this->assertSame($expected, geocatlive_planName($params));
    }

    public function testNoPlanAtAllIsAConfigurationError(): void
    {
        $this->expectException(BridgeException::class);
        $this->expectExceptionMessage('GeoCat Live: the product has no plan; choose one in its Module Settings (or add a configurable option "Plan").');
        geocatlive_planName(['configoption2' => ' ', 'configoptions' => ['Plan' => ' | ']]);
    }

    public function testTheProductAndDomainSentAreTrimmed(): void
    {
        $this->assertSame('GeoServer-PostGIS', geocatlive_productSlug(['configoption1' => "  GeoServer-PostGIS \n"]));
        $this->assertSame('maps.example.org', geocatlive_domain(['domain' => ' maps.example.org ']));
        // An IP address is sent as WHMCS has it: the bridge refuses it with a message naming it.
        $this->assertSame('192.0.2.10', geocatlive_domain(['domain' => '192.0.2.10']));
        $this->assertNull(geocatlive_domain(['domain' => '   ']));
        $this->assertNull(geocatlive_domain([]));
    }

    public function testALongDomainIsNeverShortenedIntoAnotherHostname(): void
    {
        // Cut at 253 characters, this would become a different, valid hostname; the bridge refuses it by name.
        $domain = str_repeat(str_repeat('a', 63) . '.', 3) . str_repeat('b', 60) . '.example.org';
        $this->assertSame($domain, geocatlive_domain(['domain' => $domain]));
    }
}
