<?php
/**
 * The $params WHMCS hands a server module for a service, as WHMCS 8 builds them
 * (module-parameters.md and a WHMCS 8.13 dump), pointing at a given bridge.
 */

final class WhmcsParams
{
    const SERVER_ID = 3;
    const CLIENT_ID = 42;
    const SERVICE_PASSWORD = 'Xq7!pL2#vR9s';
    const SERVER_PASSWORD = 'server-pw-0815';

    /**
     * @param string $bridgeUrl e.g. http://127.0.0.1:8000 (a path is kept as a prefix)
     * @param array  $overrides merged over the defaults (arrays are replaced, not merged)
     */
    public static function service(int $serviceId, string $bridgeUrl, string $token, array $overrides = []): array
    {
        $server = self::server($bridgeUrl, $token);
        $params = array_merge([
            'whmcsVersion' => '8.13.1-release.1',
            'accountid' => $serviceId,
            'serviceid' => $serviceId,
            'addonId' => 0,
            'userid' => self::CLIENT_ID,
            'domain' => '',
            'username' => 'rivermaps',
            'password' => self::SERVICE_PASSWORD,
            'packageid' => 7,
            'pid' => 7,
            'serverid' => self::SERVER_ID,
            'status' => 'Pending',
            'type' => 'other',
            'producttype' => 'other',
            'moduletype' => 'geocatlive',
            'qty' => 1,
            'configoption1' => 'busybox-demo',
            'configoption2' => 'small',
            'configoption3' => '60',
            'configoptions' => [],
            'customfields' => ['Project name' => 'River maps'],
            'clientsdetails' => [
                'userid' => self::CLIENT_ID,
                'id' => self::CLIENT_ID,
                'uuid' => '5b7a8a56-9c0a-4bb0-8a8e-1d3c1a9f0a42',
                'firstname' => 'Ada',
                'lastname' => 'Lovelace',
                'fullname' => 'Ada Lovelace',
                'companyname' => 'Analytical Maps Ltd',
                'email' => 'ada@example.org',
                'address1' => '12 St James\'s Square',
                'address2' => '',
                'city' => 'London',
                'state' => 'London',
                'postcode' => 'SW1Y 4JH',
                'country' => 'GB',
                'countryname' => 'United Kingdom',
                'phonenumber' => '+44.2071234567',
                'language' => 'english',
                'currency' => 1,
                'status' => 'Active',
            ],
        ], $server);
        for ($i = 4; $i <= 24; $i++) {
            $params['configoption' . $i] = '';
        }
        return array_replace($params, $overrides);
    }

    /** The server fields: the bridge URL split into hostname, port and Secure tick. */
    public static function server(string $bridgeUrl, string $token, int $serverId = self::SERVER_ID): array
    {
        $parts = parse_url($bridgeUrl);
        $secure = ($parts['scheme'] ?? 'http') === 'https';
        $host = ($parts['host'] ?? '') . (isset($parts['path']) ? rtrim($parts['path'], '/') : '');
        return [
            'serverid' => $serverId,
            'server' => true,
            'serverip' => filter_var($parts['host'] ?? '', FILTER_VALIDATE_IP) ? $parts['host'] : '',
            'serverhostname' => $host,
            'serverusername' => '',
            'serverpassword' => self::SERVER_PASSWORD,
            'serveraccesshash' => $token,
            'serversecure' => $secure,
            'serverhttpprefix' => $secure ? 'https' : 'http',
            'serverport' => (string) ($parts['port'] ?? ($secure ? 443 : 80)),
        ];
    }
}
