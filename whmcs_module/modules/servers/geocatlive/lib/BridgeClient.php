<?php
/**
 * HTTP client of the GeoCat Live Bridge's WHMCS API (/whmcs/v1), on php-curl.
 *
 * - TLS peers and host names are always verified; plain http is used only when
 *   the WHMCS server is not marked "Secure".
 * - Every request has a connect timeout and a total timeout of wait + 30 s.
 * - Every failure (network, timeout, TLS, HTTP error, invalid JSON) becomes a
 *   BridgeException whose message billing staff can act on.
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

    /**
     * @param string        $baseUrl  e.g. https://bridge.example.org or http://127.0.0.1:8000
     * @param string        $token    a key with the whmcs scope
     * @param callable|null $logger   receives every exchange (see $logger above)
     * @param string[]      $secrets  further values to mask in the log
     * @param array         $options  connect_timeout, response_margin (seconds)
     */
    public function __construct(string $baseUrl, string $token, ?callable $logger = null, array $secrets = [], array $options = [])
    {
        $this->baseUrl = rtrim($baseUrl, '/');
        $this->token = $token;
        $this->logger = $logger;
        $this->secrets = $secrets;
        $this->connectTimeout = (int) ($options['connect_timeout'] ?? self::CONNECT_TIMEOUT_SECONDS);
        $this->responseMargin = (int) ($options['response_margin'] ?? self::RESPONSE_MARGIN_SECONDS);
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
     * The hostname may carry a path prefix (bridge behind a reverse proxy), and a
     * scheme typed by mistake is ignored: the "Secure" tick decides.
     *
     * @throws BridgeException
     */
    public static function baseUrlFromServerParams(array $params): string
    {
        $host = trim((string) ($params['serverhostname'] ?? ''));
        if ($host === '') {
            $host = trim((string) ($params['serverip'] ?? ''));
        }
        $host = preg_replace('#^[a-z][a-z0-9+.-]*://#i', '', $host);
        $host = rtrim((string) $host, '/');
        if ($host === '') {
            throw new BridgeException(self::PREFIX . 'the server has no hostname or IP address: set the bridge\'s address on the WHMCS server (System Settings > Servers).', 0, 'configuration');
        }
        $path = '';
        $slash = strpos($host, '/');
        if ($slash !== false) {
            $path = '/' . trim(substr($host, $slash + 1), '/');
            $host = substr($host, 0, $slash);
        }
        if (filter_var($host, FILTER_VALIDATE_IP, FILTER_FLAG_IPV6) !== false) {
            $host = '[' . $host . ']';
        } elseif (preg_match('/^\[[0-9a-f:.]+\]$|^[a-z0-9.-]+$/i', $host) !== 1) {
            throw new BridgeException(self::PREFIX . 'the server\'s hostname "' . $host . '" is not a valid host name; give the host name or IP address of the bridge without a port (the port has its own field).', 0, 'configuration');
        }
        $secure = self::isSecureFlag($params['serversecure'] ?? false);
        $scheme = $secure ? 'https' : 'http';
        $port = (int) ($params['serverport'] ?? 0);
        if ($port < 1 || $port > 65535) {
            $port = $secure ? self::DEFAULT_HTTPS_PORT : self::DEFAULT_HTTP_PORT;
        }
        $default = ($secure && $port === 443) || (!$secure && $port === 80);
        return $scheme . '://' . $host . ($default ? '' : ':' . $port) . $path;
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
        return in_array(strtolower(trim((string) $value)), ['1', 'on', 'yes', 'true'], true);
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

    /**
     * @param array $query name => value, or name => list of values (repeated parameter)
     * @return array the decoded JSON answer
     * @throws BridgeException
     */
    public function get(string $path, array $query = []): array
    {
        $pairs = [];
        foreach ($query as $name => $value) {
            foreach ((array) $value as $item) {
                $pairs[] = rawurlencode((string) $name) . '=' . rawurlencode((string) $item);
            }
        }
        return $this->send('GET', $path . ($pairs ? '?' . implode('&', $pairs) : ''), null, 0);
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
    private function send(string $method, string $path, ?array $body, int $wait): array
    {
        $url = $this->baseUrl . $path;
        $json = null;
        if ($body !== null) {
            // An empty body must still be a JSON object: {} not [].
            $json = $body ? json_encode($body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE) : '{}';
            if ($json === false) {
                throw new BridgeException(self::PREFIX . 'the request could not be encoded as JSON: ' . json_last_error_msg(), 0, 'encoding');
            }
        }
        $requestId = 'whmcs-' . bin2hex(random_bytes(8));
        $logRequest = $method . ' ' . $url . "\nX-Request-ID: " . $requestId . ($json !== null ? "\n\n" . $json : '');
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
        $raw = curl_exec($ch);
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

        if ($status >= 300 && $status < 400) {
            $message = self::PREFIX . 'the bridge at ' . $this->baseUrl . ' redirected the request (HTTP ' . $status
                . (isset($headers['location']) ? ' to ' . $headers['location'] : '') . '): check the server\'s "Secure" tick, hostname and port.';
            $this->log($logRequest, 'HTTP ' . $status . "\n" . $raw, $message, []);
            throw new BridgeException($message, $status, 'redirect');
        }

        $decoded = json_decode((string) $raw, true, 512, JSON_BIGINT_AS_STRING);
        $secrets = is_array($decoded) ? self::secretsIn($decoded) : [];
        if (!is_array($decoded)) {
            $message = $status >= 400
                ? self::PREFIX . 'the bridge at ' . $this->baseUrl . ' answered HTTP ' . $status . ' without a JSON error'
                    . self::snippet((string) $raw) . ': check that the server\'s hostname and port point to the GeoCat Live Bridge (request id ' . $requestId . ').'
                : self::PREFIX . 'invalid answer from the bridge at ' . $this->baseUrl . ' (HTTP ' . $status . ', not JSON'
                    . self::snippet((string) $raw) . '): check that the server\'s hostname and port point to the GeoCat Live Bridge.';
            $this->log($logRequest, 'HTTP ' . $status . "\n" . $raw, $message, []);
            throw new BridgeException($message, $status, 'invalid_response');
        }
        $this->log($logRequest, 'HTTP ' . $status . "\n" . $raw, self::masked($decoded), $secrets);

        if ($status >= 400 || $status < 200) {
            throw new BridgeException($this->httpErrorMessage($status, $decoded, $headers, $requestId), $status,
                (string) ($decoded['error']['code'] ?? 'http_error'));
        }
        return $decoded;
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
        $mask = array_values(array_unique(array_filter(array_merge([$this->token], $this->secrets, $secrets), function ($value) {
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

    /** The start of a non-JSON body, as plain text, for an error message. */
    private static function snippet(string $raw): string
    {
        $text = trim((string) preg_replace('/\s+/', ' ', strip_tags((string) preg_replace('/<[^>]*>/', ' ', $raw))));
        if ($text === '') {
            return '';
        }
        if (function_exists('mb_strimwidth')) {
            $text = mb_strimwidth($text, 0, 80, '...', 'UTF-8');
        } elseif (strlen($text) > 80) {
            $text = substr($text, 0, 77) . '...';
        }
        return ': "' . $text . '"';
    }
}
