<?php
/**
 * A failed call to the GeoCat Live Bridge, with a message billing staff can act on.
 *
 * The message is complete and ready to return from a module function
 * ("GeoCat Live: ..."); it never holds the API token, a password or a stack trace.
 */

namespace WHMCS\Module\Server\Geocatlive;

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

class BridgeException extends \RuntimeException
{
    /** @var int HTTP status of the bridge's answer, 0 when there was none (network error, bad input). */
    private $httpStatus;

    /** @var string The bridge's error code (order_not_found, validation_error, backup_store, ...), or a local one (configuration, network, not_bridge, backup_not_found, ...). */
    private $errorCode;

    public function __construct(string $message, int $httpStatus = 0, string $errorCode = '', ?\Throwable $previous = null)
    {
        parent::__construct($message, $httpStatus, $previous);
        $this->httpStatus = $httpStatus;
        $this->errorCode = $errorCode;
    }

    public function getHttpStatus(): int
    {
        return $this->httpStatus;
    }

    public function getErrorCode(): string
    {
        return $this->errorCode;
    }

    /**
     * True only when the bridge itself answered "there is no order for this service":
     * HTTP 404 with its error code `order_not_found`. Any other 404 (an unknown route
     * behind a wrong hostname or path, a web server's "Not Found" page) is a
     * `not_bridge` error, never "no order yet".
     */
    public function isOrderNotFound(): bool
    {
        return $this->httpStatus === 404 && $this->errorCode === 'order_not_found';
    }

    /** True when the bridge answered that the backup asked for does not exist (HTTP 404 on a backup route). */
    public function isBackupNotFound(): bool
    {
        return $this->httpStatus === 404 && $this->errorCode === 'backup_not_found';
    }

    /**
     * True when the address called is not the bridge's WHMCS API (a redirect, an HTML
     * page, JSON without the bridge's error object, a 404 for an unknown route): the
     * server's Hostname (path), Port or "Secure" tick is wrong. The message names the URL.
     */
    public function isNotTheBridge(): bool
    {
        return $this->errorCode === 'not_bridge';
    }
}
