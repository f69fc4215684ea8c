{* GeoCat Live: the client area of a service (vars from geocatlive_ClientArea, under $live;
   the Backups section from geocatlive_clientBackups, under $live.backups).
   The values are plain text from the bridge: every one is escaped here. The Restore forms
   are shown only when the product lets clients restore; RestoreBackup checks that again. *}
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

    {if isset($live.backups)}
        <h4>Backups</h4>
        <div class="geocatlive-backups">
        {if !$live.backups.available}
            <div class="alert alert-info geocatlive-backups-notice" role="status">{$live.backups.notice|escape}</div>
        {else}
            {if $live.backups.failing}
                <div class="alert alert-warning geocatlive-backup-failure" role="alert">
                    <strong>The last backup attempt failed</strong> ({$live.backups.lastFailure.at|escape}, {$live.backups.lastFailure.kindLabel|escape}){if $live.backups.lastFailure.error}:
                    {$live.backups.lastFailure.error|escape}{/if}.
                </div>
            {/if}
            {if $live.backups.items}
                <table class="table table-sm geocatlive-backup-list">
                    <thead>
                        <tr><th scope="col">Time</th><th scope="col">Kind</th><th scope="col">Size</th>{if $live.backups.canRestore}<th scope="col"><span class="sr-only">Restore</span></th>{/if}</tr>
                    </thead>
                    <tbody>
                    {foreach $live.backups.items as $backup}
                        <tr>
                            <td>{$backup.createdAt|escape}</td>
                            <td>{$backup.kindLabel|escape}</td>
                            <td>{$backup.size|escape}</td>
                            {if $live.backups.canRestore}
                                <td>
                                    <form method="post" action="clientarea.php?action=productdetails&amp;id={$live.backups.serviceId|escape}"
                                          onsubmit="return confirm('Restore this backup? The current data of the service is replaced by the backup\'s; a backup of the current data is taken first.');">
                                        <input type="hidden" name="id" value="{$live.backups.serviceId|escape}" />
                                        <input type="hidden" name="modop" value="custom" />
                                        <input type="hidden" name="a" value="RestoreBackup" />
                                        <input type="hidden" name="backup_id" value="{$backup.id|escape}" />
                                        <button type="submit" class="btn btn-default btn-sm geocatlive-restore">Restore</button>
                                    </form>
                                </td>
                            {/if}
                        </tr>
                    {/foreach}
                    </tbody>
                </table>
            {else}
                <p><em>No backups yet.</em></p>
            {/if}
            {if $live.backups.lastSuccessAt}
                <p class="geocatlive-backup-last">Last successful backup: {$live.backups.lastSuccessAt|escape}.</p>
            {/if}
        {/if}
        {if $live.backups.available && $live.backups.canBackUp}
            <form method="post" action="clientarea.php?action=productdetails&amp;id={$live.backups.serviceId|escape}">
                <input type="hidden" name="id" value="{$live.backups.serviceId|escape}" />
                <input type="hidden" name="modop" value="custom" />
                <input type="hidden" name="a" value="BackUpNow" />
                <button type="submit" class="btn btn-primary btn-sm geocatlive-backup-now">Back up now</button>
            </form>
        {/if}
        </div>
    {/if}
{/if}
</div>
