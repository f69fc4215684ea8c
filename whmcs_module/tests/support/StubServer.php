<?php
/**
 * Local servers for the tests that emulate a broken or fake bridge at the wire
 * level: PHP's built-in server with fixtures/broken_bridge.php, or
 * `openssl s_server` with a self-signed certificate. Nothing of the module is mocked.
 */

final class StubServer
{
    /** @var resource */
    private $process;
    /** @var int */
    public $port;
    /** @var string */
    public $url;
    /** @var string requests the PHP stub recorded, one JSON object a line */
    public $requestLog;
    /** @var string a directory to remove on stop (the TLS key and certificate) */
    private $scratch;

    private function __construct($process, int $port, string $url, string $requestLog, string $scratch = '')
    {
        $this->process = $process;
        $this->port = $port;
        $this->url = $url;
        $this->requestLog = $requestLog;
        $this->scratch = $scratch;
    }

    /** PHP's built-in server running fixtures/broken_bridge.php. */
    public static function brokenBridge(): self
    {
        return self::router('broken_bridge.php');
    }

    /** PHP's built-in server running the router fixtures/$fixture. */
    public static function router(string $fixture): self
    {
        $port = self::freePort();
        $log = tempnam(sys_get_temp_dir(), 'geocatlive-stub-');
        $router = dirname(__DIR__) . '/fixtures/' . $fixture;
        $env = array_merge(getenv(), ['GEOCATLIVE_STUB_LOG' => $log]);
        $process = proc_open([PHP_BINARY, '-S', '127.0.0.1:' . $port, $router], [
            0 => ['file', '/dev/null', 'r'],
            1 => ['file', '/dev/null', 'w'],
            2 => ['file', '/dev/null', 'w'],
        ], $pipes, null, $env);
        $server = new self($process, $port, 'http://127.0.0.1:' . $port, $log);
        $server->waitUntilListening();
        return $server;
    }

    /** `openssl s_server` on a fresh self-signed certificate for 127.0.0.1. */
    public static function selfSignedTls(): self
    {
        $dir = sys_get_temp_dir() . '/geocatlive-tls-' . bin2hex(random_bytes(4));
        mkdir($dir);
        exec('openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1'
            . ' -keyout ' . escapeshellarg($dir . '/key.pem') . ' -out ' . escapeshellarg($dir . '/cert.pem') . ' 2>&1', $output, $status);
        if ($status !== 0) {
            throw new \RuntimeException('openssl req failed: ' . implode("\n", $output));
        }
        $port = self::freePort();
        $process = proc_open(['openssl', 's_server', '-quiet', '-www', '-accept', (string) $port,
            '-cert', $dir . '/cert.pem', '-key', $dir . '/key.pem'], [
            0 => ['file', '/dev/null', 'r'],
            1 => ['file', '/dev/null', 'w'],
            2 => ['file', '/dev/null', 'w'],
        ], $pipes);
        $server = new self($process, $port, 'https://127.0.0.1:' . $port, '', $dir);
        $server->waitUntilListening();
        return $server;
    }

    /** A port nothing listens on (bound once by the OS, then released). */
    public static function freePort(): int
    {
        $socket = stream_socket_server('tcp://127.0.0.1:0', $errno, $error);
        if ($socket === false) {
            throw new \RuntimeException('no free port: ' . $error);
        }
        $name = stream_socket_get_name($socket, false);
        fclose($socket);
        return (int) substr((string) $name, strrpos((string) $name, ':') + 1);
    }

    /** The requests the PHP stub recorded so far. */
    public function requests(): array
    {
        $lines = is_file($this->requestLog) ? file($this->requestLog, FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) : [];
        return array_map(function ($line) {
            return json_decode($line, true);
        }, $lines);
    }

    public function stop(): void
    {
        if (is_resource($this->process)) {
            proc_terminate($this->process);
            proc_close($this->process);
        }
        if ($this->requestLog !== '' && is_file($this->requestLog)) {
            unlink($this->requestLog);
        }
        if ($this->scratch !== '' && is_dir($this->scratch)) {
            array_map('unlink', glob($this->scratch . '/*') ?: []);
            rmdir($this->scratch);
        }
    }

    private function waitUntilListening(): void
    {
        $deadline = microtime(true) + 10;
        while (microtime(true) < $deadline) {
            $connection = @fsockopen('127.0.0.1', $this->port, $errno, $error, 0.2);
            if ($connection !== false) {
                fclose($connection);
                return;
            }
            usleep(50000);
        }
        $this->stop();
        throw new \RuntimeException('the stub server on port ' . $this->port . ' did not start');
    }
}
