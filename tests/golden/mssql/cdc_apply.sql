-- staging
if schema_id(N'dpone_staging') is null exec(N'create schema [dpone_staging]')
create table [dpone_staging].[items__c5b12e79928e] (
  [id] bigint null,
  [name] nvarchar(100) null,
  [updated_at] datetime2(7) null,
  [_dpone_op] nvarchar(1) null,
  [dpone_load_seq] bigint identity(1,1) not null
)
-- bulk copy (TDS bulk load, TABLOCK) into [dpone_staging].[items__c5b12e79928e] (id, name, updated_at, _dpone_op)
-- one transaction: any error rolls all of it back (xact_abort)
set xact_abort on; set lock_timeout 600000; begin transaction; declare @dpone_now datetimeoffset(7) = sysdatetimeoffset(); exec sys.sp_set_session_context @key = N'dpone.finalize_at', @value = @dpone_now;
-- finalize: one transaction
-- parameters: 'dpone:raw.items'
declare @dpone_lock int; exec @dpone_lock = sys.sp_getapplock @Resource = ?, @LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = 600000; if @dpone_lock < 0 throw 50001, N'dpone: the finalize lock of this target was not granted (another finalize holds it past the lock timeout, or a deadlock); nothing was changed', 1;
select top (1) 1 from [raw].[items] with (repeatableread)
-- fails on a NULL in a unique_key column
select (select count_big(*) from [dpone_staging].[items__c5b12e79928e] where [id] is null) as [dpone_nulls], (select top (5) [id] from [dpone_staging].[items__c5b12e79928e] where [id] is null for json path, include_null_values) as [dpone_json_sample]
select top (5) [id], count_big(*) from [dpone_staging].[items__c5b12e79928e] group by [id] having count_big(*) > 1 order by count_big(*) desc
-- only when the batch has duplicate keys
with dpone_d as (select row_number() over (partition by [id] order by [dpone_load_seq] desc) as dpone_rn from [dpone_staging].[items__c5b12e79928e]) delete from dpone_d where dpone_rn > 1
-- key statistics: the deletes join the target by key
if not exists (select 1 from sys.stats where object_id = object_id(N'[dpone_staging].[items__c5b12e79928e]') and name = N'dpone_keys') create statistics [dpone_keys] on [dpone_staging].[items__c5b12e79928e] ([id])
-- only when the batch is a full snapshot (the first read, or after a reset), which holds every key
-- fails above max_delete_fraction 0.05, before any change
select (select count_big(*) from [raw].[items] as t where not exists (select 1 from [dpone_staging].[items__c5b12e79928e] as s where t.[id] = s.[id])), (select count_big(*) from [raw].[items] as t)
-- only when the batch is a full snapshot (the first read, or after a reset), which holds every key
delete t from [raw].[items] as t where not exists (select 1 from [dpone_staging].[items__c5b12e79928e] as s where t.[id] = s.[id])
-- the feed's deletes
delete t from [raw].[items] as t where exists (select 1 from [dpone_staging].[items__c5b12e79928e] as s where s.[_dpone_op] = N'D' and t.[id] = s.[id])
-- deleted keys leave the batch before the merge
delete from [dpone_staging].[items__c5b12e79928e] where [_dpone_op] = N'D'
-- row count and key statistics for the joins
if not exists (select 1 from sys.stats where object_id = object_id(N'[dpone_staging].[items__c5b12e79928e]') and name = N'dpone_keys') create statistics [dpone_keys] on [dpone_staging].[items__c5b12e79928e] ([id])
update t set [name] = s.[name], [updated_at] = s.[updated_at] from [raw].[items] as t with (updlock, serializable) join [dpone_staging].[items__c5b12e79928e] as s on t.[id] = s.[id]
-- only when some staged key did not match a target row (every one updated: nothing is new)
insert into [raw].[items] ([id], [name], [updated_at]) select s.[id], s.[name], s.[updated_at] from [dpone_staging].[items__c5b12e79928e] as s where not exists (select 1 from [raw].[items] as t with (updlock, serializable) where t.[id] = s.[id])
commit transaction; set lock_timeout -1; exec sys.sp_set_session_context @key = N'dpone.finalize_at', @value = null;
