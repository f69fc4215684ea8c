<?php
/**
 * HTTP client of the GeoCat Live Bridge's WHMCS API (/whmcs/v1), on php-curl.
 *
 * - TLS peers and host names are always verified; plain http is used only when
 *   the WHMCS server is not marked "Secure". A scheme written in the Hostname must
 *   agree with the "Secure" tick: https:// is never downgraded (see
 *   baseUrlFromServerParams). Requests to a loopback address never use a proxy.
 * - Every request has a connect timeout and a total timeout of wait + 30 s.
 * - Every failure (network, timeout, TLS, HTTP error, invalid JSON) becomes a
 *   BridgeException whose message billing staff can act on. An answer that is not
 *   the bridge's (a redirect, an HTML page, JSON without the bridge's error object,
 *   a 404 other than the bridge's `order_not_found`) is a `not_bridge` error that
 *   names the URL called and the settings to check.
 * - Every exchange goes to the logger (WHMCS's logModuleCall) with the token,
 *   the passwords and any generated secret in the answer listed for masking.
 */

namespace WHMCS\Module\Server\Geocatlive;

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

class BridgeClient
{
    /** The longest `wait` the bridge accepts, in seconds. */
    const MAX_WAIT_SECONDS = 120;
    /** Added to `wait` for the total request timeout. */
    const RESPONSE_MARGIN_SECONDS = 30;
    const CONNECT_TIMEOUT_SECONDS = 10;
    /** gunicorn's port in the bridge's default configuration (http). */
    const DEFAULT_HTTP_PORT = 8000;
    const DEFAULT_HTTPS_PORT = 443;
    const USER_AGENT = 'GeoCat-Live-WHMCS/1.0';
    const PREFIX = 'GeoCat Live: ';
    /** How bodies are encoded (and how a secret looks inside one, for masking). */
    const JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE;

    /** curl errors that mean the TLS handshake or certificate check failed. */
    const TLS_ERRORS = [35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91];
    /** curl errors that mean no connection was made. */
    const CONNECT_ERRORS = [5, 6, 7];

    /** @var string */
    private $baseUrl;
    /** @var string */
    private $token;
    /** @var callable|null function (string $request, string|array $response, mixed $processed, string[] $secrets) */
    private $logger;
    /** @var string[] values masked in the log besides the token (server and service passwords) */
    private $secrets;
    /** @var int */
    private $connectTimeout;
    /** @var int */
    private $responseMargin;
    /** @var string[] curl's CONNECT_TO entries ("HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT") */
    private $connectTo;

    /**
     * @param string        $baseUrl  e.g. https://bridge.example.org or http://127.0.0.1:8000
     * @param string        $token    a key with the whmcs scope
     * @param callable|null $logger   receives every exchange (see $logger above)
     * @param string[]      $secrets  further values to mask in the log
     * @param array         $options  connect_timeout, response_margin (seconds); connect_to: curl's
     *                                CONNECT_TO list (connect to another host and port than the URL's,
     *                                e.g. for a split-horizon network; the tests use it)
     */
    public function __construct(string $baseUrl, string $token, ?callable $logger = null, array $secrets = [], array $options = [])
    {
        $this->baseUrl = rtrim($baseUrl, '/');
        $this->token = $token;
        $this->logger = $logger;
        $this->secrets = $secrets;
        $this->connectTimeout = (int) ($options['connect_timeout'] ?? self::CONNECT_TIMEOUT_SECONDS);
        $this->responseMargin = (int) ($options['response_margin'] ?? self::RESPONSE_MARGIN_SECONDS);
        $this->connectTo = array_values(array_filter((array) ($options['connect_to'] ?? []), 'is_string'));
    }

    /**
     * A client for the WHMCS server in $params (serverhostname or serverip, serverport,
     * serversecure, serveraccesshash or serverpassword).
     *
     * @throws BridgeException when the server has no address or no token
     */
    public static function fromServerParams(array $params, ?callable $logger = null, array $options = []): self
    {
        $secrets = [];
        foreach (['serverpassword', 'serveraccesshash', 'password'] as $key) {
            if (isset($params[$key]) && is_scalar($params[$key]) && (string) $params[$key] !== '') {
                $secrets[] = (string) $params[$key];
            }
        }
        return new self(self::baseUrlFromServerParams($params), self::tokenFromServerParams($params), $logger, $secrets, $options);
    }

    /**
     * https://host[:port][/path] (or http when the server is not marked secure).
     *
     * The address is the server's Hostname, or its IP Address when the Hostname is
     * empty. It may carry a path prefix (bridge behind a reverse proxy:
     * live.example.org/bridge). Without a scheme the "Secure" tick decides. A scheme
     * written in the address must agree with the tick: "https://" without the tick,
     * or "http://" with it, is a configuration error (nothing is sent; https is never
     * silently downgraded), and any other scheme is refused.
     *
     * @throws BridgeException (error code "configuration")
     */
    public static function baseUrlFromServerParams(array $params): string
    {
        $field = 'Hostname';
        $address = trim((string) ($params['serverhostname'] ?? ''));
        if ($address === '') {
            $field = 'IP Address';
            $address = trim((string) ($params['serverip'] ?? ''));
        }
        $shown = self::displayAddress($address);
        $secure = self::secureFromServerParams($params);

        if (preg_match('#^([a-z][a-z0-9+.-]*)://#i', $address, $match) === 1) {
            $scheme = strtolower($match[1]);
            $address = substr($address, strlen($match[0]));
            if ($scheme === 'https' && !$secure) {
                throw new BridgeException(self::PREFIX . 'the server\'s ' . $field . ' "' . $shown . '" says https, but the server\'s "Secure" box'
                    . ' is not ticked; nothing was sent (the API key never goes over plain http to an address written with https://).'
                    . ' Tick "Secure" on the server (System Settings > Servers) and check its Port (443, or the bridge\'s https port).', 0, 'configuration');
            }
            if ($scheme === 'http' && $secure) {
                throw new BridgeException(self::PREFIX . 'the server\'s ' . $field . ' "' . $shown . '" says plain http, but the server\'s "Secure" box'
                    . ' is ticked; nothing was sent. Remove "http://" from the ' . $field . ' to connect over https, or untick "Secure"'
                    . ' (and set the Port, e.g. ' . self::DEFAULT_HTTP_PORT . ') if the bridge only speaks plain http on this host or a private network'
                    . ' (System Settings > Servers).', 0, 'configuration');
            }
            if ($scheme !== 'http' && $scheme !== 'https') {
                throw new BridgeException(self::PREFIX . 'the server\'s ' . $field . ' "' . $shown . '" starts with "' . $match[0] . '", which cannot reach'
                    . ' the bridge; nothing was sent. Write the host name alone (e.g. live.example.org, or live.example.org/bridge behind a path prefix)'
                    . ' and use the "Secure" tick for https (System Settings > Servers).', 0, 'configuration');
            }
        }
        $address = rtrim($address, '/');
        if ($address === '') {
            throw new BridgeException(self::PREFIX . 'the server has no hostname or IP address: set the bridge\'s address on the WHMCS server (System Settings > Servers).', 0, 'configuration');
        }
        $host = $address;
        $path = '';
        $slash = strpos($host, '/');
        if ($slash !== false) {
            $path = '/' . trim(substr($host, $slash + 1), '/');
            $host = substr($host, 0, $slash);
            if (preg_match('#^[A-Za-z0-9._~!$&\'()*+,;=:@%/-]*$#', $path) !== 1) {
                throw new BridgeException(self::PREFIX . 'the server\'s ' . $field . ' "' . $shown . '" has a path with characters a URL path cannot hold'
                    . ' (?, #, spaces): give the bridge\'s host name, and its path prefix if it has one (e.g. live.example.org/bridge).', 0, 'configuration');
            }
        }
        if (preg_match('/^(\[[0-9a-f:.]+\]|[a-z0-9._-]+):([0-9]*)$/i', $host, $match) === 1) {
            throw new BridgeException(self::PREFIX . 'the server\'s ' . $field . ' "' . $shown . '" contains a port, but the port has its own field:'
                . ' write ' . $match[1] . $path . ' in the ' . $field . ($match[2] !== '' ? ' and ' . $match[2] . ' in the Port' : '')
                . ' (System Settings > Servers).', 0, 'configuration');
        }
        if (filter_var($host, FILTER_VALIDATE_IP, FILTER_FLAG_IPV6) !== false) {
            $host = '[' . $host . ']';
        } elseif (preg_match('/^\[[0-9a-f:.]+\]$|^[a-z0-9._-]+$/i', $host) !== 1) {
            throw new BridgeException(self::PREFIX . 'the server\'s hostname "' . self::displayAddress($host) . '" is not a valid host name; give the host name or IP address of the bridge without a port (the port has its own field).', 0, 'configuration');
        }
        $scheme = $secure ? 'https' : 'http';
        $port = (int) ($params['serverport'] ?? 0);
        if ($port < 1 || $port > 65535) {
            $port = $secure ? self::DEFAULT_HTTPS_PORT : self::DEFAULT_HTTP_PORT;
        }
        $default = ($secure && $port === 443) || (!$secure && $port === 80);
        return $scheme . '://' . $host . ($default ? '' : ':' . $port) . $path;
    }

    /**
     * The server's "Secure" tick. WHMCS 8 also passes serverhttpprefix ("https" or
     * "http"), derived from the same tick; either saying https counts as ticked, so a
     * caller that sends only one of them is never downgraded.
     */
    public static function secureFromServerParams(array $params): bool
    {
        return self::isSecureFlag($params['serversecure'] ?? false)
            || strtolower(trim((string) ($params['serverhttpprefix'] ?? ''))) === 'https';
    }

    /**
     * True for a host that is this machine: 127.0.0.0/8, ::1 (also IPv4-mapped
     * ::ffff:127.x.y.z), with or without brackets, and "localhost" in any case.
     * Plain http to such an address never leaves the host. A DNS name that merely
     * resolves to 127.0.0.1 does not count: write the address itself.
     */
    public static function isLoopbackHost(string $host): bool
    {
        $host = strtolower(trim($host));
        if (strlen($host) > 2 && $host[0] === '[' && substr($host, -1) === ']') {
            $host = substr($host, 1, -1);
        }
        if ($host === 'localhost') {
            return true;
        }
        if (filter_var($host, FILTER_VALIDATE_IP, FILTER_FLAG_IPV4) !== false) {
            return strncmp($host, '127.', 4) === 0;
        }
        if (filter_var($host, FILTER_VALIDATE_IP, FILTER_FLAG_IPV6) !== false) {
            $packed = (string) inet_pton($host);
            return $packed === inet_pton('::1')
                || (strncmp($packed, str_repeat("\0", 10) . "\xff\xff", 12) === 0 && $packed[12] === "\x7f");
        }
        return false;
    }

    /**
     * The API token: the server's access hash, or its password when the hash is empty.
     *
     * @throws BridgeException
     */
    public static function tokenFromServerParams(array $params): string
    {
        $token = trim((string) ($params['serveraccesshash'] ?? ''));
        if ($token === '') {
            $token = trim((string) ($params['serverpassword'] ?? ''));
        }
        if ($token === '') {
            throw new BridgeException(self::PREFIX . 'the server has no API key: create one with `flask --app wsgi live apikey create whmcs --scope whmcs` and put it in the server\'s Access Hash (or Password).', 0, 'configuration');
        }
        if (preg_match('/[^\x21-\x7e]/', $token) === 1) {
            throw new BridgeException(self::PREFIX . 'the server\'s API key contains spaces or invalid characters: paste the key exactly as `live apikey create` printed it.', 0, 'configuration');
        }
        return $token;
    }

    /** WHMCS gives the "Secure" tick as true/false, "on"/"", or 1/0. */
    public static function isSecureFlag($value): bool
    {
        if (is_bool($value)) {
            return $value;
        }
        // An HTML checkbox posts "on"; WHMCS stores and passes it as "on", "1", or, in some versions, "checked".
        return in_array(strtolower(trim((string) $value)), ['1', 'on', 'yes', 'true', 'checked'], true);
    }

    /** The bridge's `wait` from a number of seconds in any form, clamped to 0..120. */
    public static function clampWait($seconds): int
    {
        if (!is_numeric($seconds)) {
            return 0;
        }
        return (int) max(0, min(self::MAX_WAIT_SECONDS, (int) round((float) $seconds)));
    }

    /**
     * A logger for the constructor that writes to WHMCS's module log (when WHMCS provides it).
     */
    public static function moduleLogger(string $action): callable
    {
        return function (string $request, string $response, $processed, array $mask) use ($action) {
            if (function_exists('logModuleCall')) {
                logModuleCall('geocatlive', $action, $request, $response, $processed, $mask);
            }
        };
    }

    public function baseUrl(): string
    {
        return $this->baseUrl;
    }

    public function isSecure(): bool
    {
        return strncasecmp($this->baseUrl, 'https://', 8) === 0;
    }

    /** True when the bridge's address is this machine (see isLoopbackHost). */
    public function isLoopback(): bool
    {
        return self::isLoopbackHost((string) parse_url($this->baseUrl, PHP_URL_HOST));
    }

    /**
     * Writes a remark to the module log under this client's action (nothing is sent),
     * masked like every exchange.
     */
    public function logRemark(string $request, string $remark): void
    {
        $this->log($request, $remark, '', []);
    }

    /**
     * @param array $query name => value, or name => list of values (repeated parameter)
     * @return array the decoded JSON answer
     * @throws BridgeException
     */
    public function get(string $path, array $query = []): array
    {
        return $this->send('GET', $path . self::queryString($query), null, 0);
    }

    /**
     * A GET whose answer is plain text (the service logs: `text/plain`, not JSON). Errors are the
     * bridge's JSON errors, as for get(); a 2xx answer that is not text/plain is a `not_bridge` error.
     *
     * @param array $query    as for get()
     * @param int   $keepLast keep only the last this many bytes of the body as it arrives (0: all of it), so a
     *                        huge answer never fills the memory; `cut` says whether anything was dropped
     * @return array ['body' => string, 'headers' => [lower-case name => value], 'cut' => bool]
     * @throws BridgeException
     */
    public function getText(string $path, array $query = [], int $keepLast = 0): array
    {
        return $this->send('GET', $path . self::queryString($query), null, 0, true, $keepLast);
    }

    /** "?a=1&b=2&b=3" of name => value (or name => list of values: a repeated parameter); "" for none. */
    private static function queryString(array $query): string
    {
        $pairs = [];
        foreach ($query as $name => $value) {
            foreach ((array) $value as $item) {
                $pairs[] = rawurlencode((string) $name) . '=' . rawurlencode((string) $item);
            }
        }
        return $pairs ? '?' . implode('&', $pairs) : '';
    }

    /**
     * @param array $body JSON object; its `wait` (seconds) lengthens the timeout
     * @return array the decoded JSON answer
     * @throws BridgeException
     */
    public function post(string $path, array $body = []): array
    {
        $wait = isset($body['wait']) ? self::clampWait($body['wait']) : 0;
        return $this->send('POST', $path, $body, $wait);
    }

    /**
     * @throws BridgeException
     */
    private function send(string $method, string $path, ?array $body, int $wait, bool $text = false, int $keepLast = 0): array
    {
        $url = $this->baseUrl . $path;
        $json = null;
        if ($body !== null) {
            // An empty body must still be a JSON object: {} not [].
            $json = $body ? json_encode($body, self::JSON_FLAGS) : '{}';
            if ($json === false) {
                throw new BridgeException(self::PREFIX . 'the request could not be encoded as JSON: ' . json_last_error_msg(), 0, 'encoding');
            }
        }
        $requestId = 'whmcs-' . bin2hex(random_bytes(8));
        // The customer's password never reaches the module log, whatever it holds: masking by value would miss its
        // JSON form (a " or \ is escaped in the body) and a value shorter than 4 characters.
        $logJson = $json;
        if ($body !== null && isset($body['password'])) {
            $logJson = json_encode(array_merge($body, ['password' => '********']), self::JSON_FLAGS);
        }
        $logRequest = $method . ' ' . $url . "\nX-Request-ID: " . $requestId . ($logJson !== null ? "\n\n" . $logJson : '');
        $timeout = $wait + $this->responseMargin;

        $headers = [];
        $ch = curl_init();
        curl_setopt_array($ch, [
            CURLOPT_URL => $url,
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_PROTOCOLS => CURLPROTO_HTTP | CURLPROTO_HTTPS,
            CURLOPT_SSL_VERIFYPEER => true,
            CURLOPT_SSL_VERIFYHOST => 2,
            CURLOPT_CONNECTTIMEOUT => $this->connectTimeout,
            CURLOPT_TIMEOUT => $timeout,
            CURLOPT_NOSIGNAL => true,
            CURLOPT_USERAGENT => self::USER_AGENT,
            CURLOPT_HTTPHEADER => array_merge([
                'Accept: application/json',
                'Authorization: Bearer ' . $this->token,
                'X-Request-ID: ' . $requestId,
            ], $json !== null ? ['Content-Type: application/json', 'Expect:'] : []),
            CURLOPT_HEADERFUNCTION => function ($handle, $line) use (&$headers) {
                $parts = explode(':', $line, 2);
                if (count($parts) === 2) {
                    $headers[strtolower(trim($parts[0]))] = trim($parts[1]);
                }
                return strlen($line);
            },
        ]);
        if ($json !== null) {
            curl_setopt($ch, CURLOPT_POSTFIELDS, $json);
        }
        if ($this->isLoopback()) {
            // The bridge is on this host: an http_proxy from the environment must not carry the key elsewhere.
            curl_setopt($ch, CURLOPT_NOPROXY, '*');
        }
        if ($this->connectTo) {
            curl_setopt($ch, CURLOPT_CONNECT_TO, $this->connectTo);
        }
        $kept = '';
        $cut = false;
        if ($keepLast > 0) {
            // The body's end only: trimmed whenever it doubles, so memory stays under 2 x $keepLast.
            curl_setopt($ch, CURLOPT_WRITEFUNCTION, function ($handle, $data) use (&$kept, &$cut, $keepLast) {
                $kept .= $data;
                if (strlen($kept) > 2 * $keepLast) {
                    $kept = substr($kept, -$keepLast);
                    $cut = true;
                }
                return strlen($data);
            });
        }
        $raw = curl_exec($ch);
        if ($keepLast > 0 && $raw !== false) {
            if (strlen($kept) > $keepLast) {
                $kept = substr($kept, -$keepLast);
                $cut = true;
            }
            $raw = $kept;
        }
        $errno = curl_errno($ch);
        $error = curl_error($ch);
        $status = (int) curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
        $connected = (float) curl_getinfo($ch, CURLINFO_CONNECT_TIME) > 0;
        if (PHP_VERSION_ID < 80000) {
            curl_close($ch); // a no-op since PHP 8.0, deprecated in 8.5
        }

        if ($raw === false || $errno !== 0) {
            $message = $this->networkMessage($method, $url, $errno, $error, $timeout, $connected);
            $this->log($logRequest, 'curl error ' . $errno . ': ' . $error, $message, []);
            throw new BridgeException($message, 0, 'network');
        }

        $response = 'HTTP ' . $status . "\n" . $raw;
        if ($status >= 300 && $status < 400) {
            $location = (string) ($headers['location'] ?? '');
            $hint = !$this->isSecure() && stripos($location, 'https://') === 0
                ? '; a redirect to https means the address wants https: tick "Secure" and set the Port' : '';
            $message = $this->notTheBridgeMessage($method, $url, 'a redirect (HTTP ' . $status . ($location !== '' ? ' to ' . $location : '') . ')', $hint);
            $this->log($logRequest, $response, $message, []);
            throw new BridgeException($message, $status, 'not_bridge');
        }

        if ($text && $status >= 200 && $status < 300) {
            if (stripos((string) ($headers['content-type'] ?? ''), 'text/plain') !== 0) {
                $message = $this->notTheBridgeMessage($method, $url, 'HTTP ' . $status . ', not plain text' . self::snippet((string) $raw));
                $this->log($logRequest, $response, $message, []);
                throw new BridgeException($message, $status, 'not_bridge');
            }
            $this->log($logRequest, 'HTTP ' . $status . "\n(" . strlen((string) $raw) . ' bytes of text)', '', []);
            return ['body' => (string) $raw, 'headers' => $headers, 'cut' => $cut];
        }
        $decoded = json_decode((string) $raw, true, 512, JSON_BIGINT_AS_STRING);
        if (!is_array($decoded)) {
            $what = json_last_error() === JSON_ERROR_NONE ? 'not a JSON object' : 'not JSON';
            $message = $status >= 500
                ? $this->serverErrorMessage($method, $url, $status, 'without the bridge\'s JSON error' . self::snippet((string) $raw), $requestId)
                : $this->notTheBridgeMessage($method, $url, 'HTTP ' . $status . ', ' . $what . self::snippet((string) $raw));
            $this->log($logRequest, $response, $message, []);
            throw new BridgeException($message, $status, $status >= 500 ? 'invalid_response' : 'not_bridge');
        }
        $secrets = self::secretsIn($decoded);
        if ($status >= 200 && $status < 300) {
            $this->log($logRequest, $response, self::masked($decoded), $secrets);
            return $decoded;
        }
        $exception = $this->errorAnswer($method, $url, $status, $decoded, (string) $raw, $headers, $requestId);
        $this->log($logRequest, $response, $exception->getMessage(), $secrets);
        throw $exception;
    }

    /**
     * The exception for a JSON answer with an error status: the bridge's own error,
     * or `not_bridge` when the answer is not the bridge's (no error object, or a 404
     * other than order_not_found, which only an unknown route gives).
     */
    private function errorAnswer(string $method, string $url, int $status, array $decoded, string $raw, array $headers, string $requestId): BridgeException
    {
        $error = $decoded['error'] ?? null;
        $code = is_array($error) && isset($error['code']) && is_string($error['code']) ? $error['code'] : '';
        if ($code === '' || !isset($error['message']) || !is_string($error['message'])) {
            if ($status >= 500) {
                return new BridgeException($this->serverErrorMessage($method, $url, $status, 'without the bridge\'s JSON error', $requestId), $status, 'invalid_response');
            }
            return new BridgeException($this->notTheBridgeMessage($method, $url, 'HTTP ' . $status . ', JSON without the bridge\'s error object'
                . self::snippet($raw)), $status, 'not_bridge');
        }
        if ($status === 404 && self::isUnknownBackup($url, $code, $error['message'])) {
            return new BridgeException($this->httpErrorMessage($status, $decoded, $headers, $requestId), $status, 'backup_not_found');
        }
        if ($status === 404 && $code !== 'order_not_found') {
            return new BridgeException($this->notTheBridgeMessage($method, $url, 'HTTP 404 ' . $code . self::snippet($error['message'], 160)), 404, 'not_bridge');
        }
        return new BridgeException($this->httpErrorMessage($status, $decoded, $headers, $requestId), $status, $code);
    }

    /**
     * True for the bridge's own "no such backup" on a backup route (.../backups/{backup_id}/...): its error
     * code backup_not_found, or not_found with a message that names a backup ("no backup X"). An unknown
     * route (a wrong path prefix, a bridge from before backups) answers not_found with werkzeug's "The
     * requested URL was not found" instead, which stays a `not_bridge` error.
     */
    private static function isUnknownBackup(string $url, string $code, string $message): bool
    {
        if (preg_match('#/backups/[^/?]+(/|$)#', (string) parse_url($url, PHP_URL_PATH)) !== 1) {
            return false;
        }
        return $code === 'backup_not_found' || ($code === 'not_found' && stripos($message, 'backup') !== false);
    }

    /**
     * "URL is not the bridge's WHMCS API (...)": the settings to check, never "no order".
     */
    private function notTheBridgeMessage(string $method, string $url, string $detail, string $hint = ''): string
    {
        return self::PREFIX . $url . ' is not the GeoCat Live Bridge\'s WHMCS API (' . $method . ' got ' . $detail . '):'
            . ' check the server\'s Hostname (with the bridge\'s path prefix, if it has one), Port and "Secure" tick in System Settings > Servers' . $hint . '.';
    }

    /** A 5xx without the bridge's error: a proxy in front of a stopped bridge, or another web server. */
    private function serverErrorMessage(string $method, string $url, int $status, string $detail, string $requestId): string
    {
        return self::PREFIX . $method . ' ' . $url . ' answered HTTP ' . $status . ' ' . $detail . ': a proxy in front of the bridge may not reach it'
            . ' (is the bridge running?), or the server\'s Hostname, Port or "Secure" tick point to another web server (request id ' . $requestId . ').';
    }

    /** The address as typed, without a user:password@ part, for messages. */
    private static function displayAddress(string $address): string
    {
        $address = (string) preg_replace('#^([a-z][a-z0-9+.-]*://)?[^/@]*@#i', '$1...@', $address);
        $address = (string) preg_replace('/[\x00-\x1f\x7f]+/', ' ', $address);
        return strlen($address) > 200 ? substr($address, 0, 197) . '...' : $address;
    }

    private function networkMessage(string $method, string $url, int $errno, string $error, int $timeout, bool $connected): string
    {
        $where = ' at ' . $this->baseUrl;
        if (in_array($errno, self::CONNECT_ERRORS, true) || ($errno === 28 && !$connected)) {
            return self::PREFIX . 'the bridge cannot be reached' . $where . ' (' . $error . '): check that it runs and that the server\'s hostname, port and "Secure" tick are right.';
        }
        if (in_array($errno, self::TLS_ERRORS, true)) {
            return self::PREFIX . 'secure connection to the bridge' . $where . ' failed (' . $error . '): the bridge needs a certificate for its host name from a CA this WHMCS server trusts (untick "Secure" only for a bridge on a private network).';
        }
        if ($errno === 28) {
            return self::PREFIX . 'the bridge' . $where . ' did not answer within ' . $timeout . ' seconds'
                . ($method === 'POST' ? '; the operation may still be under way: check the service later or run the action again (it is safe to repeat).' : '.');
        }
        return self::PREFIX . 'the request to the bridge' . $where . ' failed (curl error ' . $errno . ': ' . $error . ').';
    }

    private function httpErrorMessage(int $status, array $decoded, array $headers, string $requestId): string
    {
        $reason = '';
        if (isset($decoded['error']) && is_array($decoded['error']) && isset($decoded['error']['message']) && is_scalar($decoded['error']['message'])) {
            $reason = trim((string) $decoded['error']['message']);
        }
        if ($status === 401) {
            return self::PREFIX . 'the bridge at ' . $this->baseUrl . ' rejected the API key (HTTP 401): put a valid key with the whmcs scope in the server\'s Access Hash (or Password).';
        }
        if ($status === 403) {
            return self::PREFIX . 'the API key may not call this (HTTP 403): the server\'s key needs the whmcs scope.';
        }
        if ($reason === '') {
            $reason = 'the bridge answered HTTP ' . $status;
        }
        $message = self::PREFIX . $reason . ' (HTTP ' . $status;
        if ($status >= 500) {
            $message .= ', request id ' . ($headers['x-request-id'] ?? $requestId);
        }
        $message .= ')';
        if (isset($headers['retry-after']) && ctype_digit($headers['retry-after'])) {
            $message .= '; try again in ' . $headers['retry-after'] . ' seconds';
        }
        return $message . (substr($message, -1) === '.' ? '' : '.');
    }

    /**
     * @param string[] $secrets
     */
    private function log(string $request, string $response, $processed, array $secrets): void
    {
        if ($this->logger === null) {
            return;
        }
        $values = array_merge([$this->token], $this->secrets, $secrets);
        foreach ($values as $value) {
            // A value as a JSON string holds (an answer, a body): a " or \ in it is escaped there.
            $encoded = is_string($value) ? json_encode($value, self::JSON_FLAGS) : false;
            if (is_string($encoded) && substr($encoded, 1, -1) !== $value) {
                $values[] = substr($encoded, 1, -1);
            }
        }
        $mask = array_values(array_unique(array_filter($values, function ($value) {
            return is_string($value) && strlen($value) >= 4;
        })));
        call_user_func($this->logger, $request, $response, $processed, $mask);
    }

    /** Generated passwords in an answer (the service info's and the order's `secrets`). */
    private static function secretsIn(array $decoded): array
    {
        $found = [];
        foreach ([$decoded['secrets'] ?? null, $decoded['order']['secrets'] ?? null] as $secrets) {
            if (is_array($secrets)) {
                foreach ($secrets as $value) {
                    if (is_string($value) && $value !== '') {
                        $found[] = $value;
                    }
                }
            }
        }
        return $found;
    }

    /** The decoded answer with the generated passwords replaced, for the module log. */
    private static function masked(array $decoded): array
    {
        foreach (['secrets'] as $key) {
            if (isset($decoded[$key]) && is_array($decoded[$key])) {
                $decoded[$key] = array_map(function () {
                    return '********';
                }, $decoded[$key]);
            }
        }
        if (isset($decoded['order']) && is_array($decoded['order'])) {
            $decoded['order'] = self::masked($decoded['order']);
        }
        return $decoded;
    }

    /** The start of a body (or an error message), as plain text, for an error message. */
    private static function snippet(string $raw, int $width = 80): string
    {
        $text = trim((string) preg_replace('/\s+/', ' ', strip_tags((string) preg_replace('/<[^>]*>/', ' ', $raw))));
        if ($text === '') {
            return '';
        }
        if (function_exists('mb_strimwidth')) {
            $text = mb_strimwidth($text, 0, $width, '...', 'UTF-8');
        } elseif (strlen($text) > $width) {
            $text = substr($text, 0, $width - 3) . '...';
        }
        return ': "' . $text . '"';
    }
}
