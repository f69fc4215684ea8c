{* GeoCat Live: the client area of a service (vars from geocatlive_ClientArea, under $live).
   The values are plain text from the bridge: every one is escaped here. *}
<div class="geocatlive-service">
{if !$live.available}
    <div class="alert alert-info" role="status">{$live.notice|escape}</div>
{else}
    <table class="table table-sm geocatlive-summary">
        <tbody>
            <tr>
                <th scope="row">Status</th>
                <td><span class="label label-{$live.statusClass|escape} badge badge-{$live.statusClass|escape} geocatlive-status">{$live.statusLabel|escape}</span></td>
            </tr>
            <tr>
                <th scope="row">Address</th>
                <td>{$live.hostname|escape}</td>
            </tr>
            <tr>
                <th scope="row">Product</th>
                <td>{$live.product|escape}, plan {$live.plan|escape}</td>
            </tr>
        </tbody>
    </table>

    {if $live.running}
        <div class="alert alert-info geocatlive-progress" role="status">
            <strong>{$live.operation.kind|capitalize|escape} in progress</strong>
            ({$live.operation.state|escape}, attempt {$live.operation.attempts|escape} of {$live.operation.maxAttempts|escape}, {$live.operation.stepCount|escape} steps done){if $live.operation.step}:
            {$live.operation.step|escape}{/if}.
            Reload this page to follow it.
        </div>
    {/if}

    {if $live.lastError}
        <div class="alert alert-danger geocatlive-error" role="alert">
            <strong>Last error:</strong> {$live.lastError|escape}
        </div>
    {/if}

    <h4>Your services</h4>
    {if $live.endpoints}
        <ul class="list-unstyled geocatlive-endpoints">
        {foreach $live.endpoints as $endpoint}
            <li>
                {$endpoint.application|escape}:
                {if $endpoint.url}
                    <a href="{$endpoint.url|escape}" target="_blank" rel="noopener noreferrer">{$endpoint.url|escape}</a>
                {else}
                    <em>no address yet</em>
                {/if}
            </li>
        {/foreach}
        </ul>
    {else}
        <p><em>No endpoints yet.</em></p>
    {/if}

    {if $live.credentials}
        <h4>Generated credentials</h4>
        <table class="table table-sm geocatlive-credentials">
            <tbody>
            {foreach $live.credentials as $credential}
                <tr>
                    <th scope="row">{$credential.name|escape}</th>
                    <td><code>{$credential.value|escape}</code></td>
                </tr>
            {/foreach}
            </tbody>
        </table>
    {/if}
{/if}
</div>
