{* GeoCat Live: the client's "Logs" page (vars from geocatlive_Logs, under $logs): the last lines of each
   of the service's services, newest last. The lines are the bridge's (generated passwords masked) and are
   plain text: every value is escaped here. *}
<div class="geocatlive-logs">
    <p><a href="clientarea.php?action=productdetails&amp;id={$logs.serviceId|escape}" class="btn btn-default btn-sm">Back to the service</a></p>
{if $logs.notice}
    <div class="alert alert-info geocatlive-logs-notice" role="status">{$logs.notice|escape}</div>
{/if}
{if $logs.available}
    {foreach from=$logs.services item=service}
        <h4 class="geocatlive-logs-service">{$service.name|escape}</h4>
        {if $service.lines}
            <p class="text-muted">The last {$logs.lines|escape} lines at most, newest last.</p>
            <pre class="geocatlive-log" style="max-height: 30em; overflow: auto; white-space: pre-wrap;">{foreach from=$service.lines item=line}{$line|escape}
{/foreach}</pre>
        {else}
            <p><em>No lines.</em></p>
        {/if}
    {/foreach}
{/if}
</div>
