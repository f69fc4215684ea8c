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

    /** @var string The bridge's error code (not_found, validation_error, ...), or a local one. */
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

    /** True when the bridge answered "there is no order for this service". */
    public function isNotFound(): bool
    {
        return $this->httpStatus === 404;
    }
}
