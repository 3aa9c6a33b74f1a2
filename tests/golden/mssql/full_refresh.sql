-- staging
if schema_id(N'dpone_staging') is null exec(N'create schema [dpone_staging]')
create table [dpone_staging].[items__c5b12e79928e] (
  [id] bigint not null,
  [name] nvarchar(100) not null,
  [updated_at] datetime2(7) not null
)
-- bulk copy (TDS bulk load, TABLOCK) into [dpone_staging].[items__c5b12e79928e] (id, name, updated_at)
-- fails if the batch is empty while the target holds rows (sink.allow_empty)
-- one transaction: any error rolls all of it back (xact_abort)
set xact_abort on; set lock_timeout 600000; begin transaction; declare @dpone_now datetimeoffset(7) = sysdatetimeoffset(); exec sys.sp_set_session_context @key = N'dpone.finalize_at', @value = @dpone_now;
-- finalize: one transaction
-- parameters: 'dpone:raw.items'
declare @dpone_lock int; exec @dpone_lock = sys.sp_getapplock @Resource = ?, @LockMode = N'Exclusive', @LockOwner = N'Transaction', @LockTimeout = 600000; if @dpone_lock < 0 throw 50001, N'dpone: the finalize lock of this target was not granted (another finalize holds it past the lock timeout, or a deadlock); nothing was changed', 1;
select top (1) 1 from [raw].[items] with (tablockx, holdlock)
-- the target is not a plain identical table: its rows are replaced
truncate table [raw].[items]
insert into [raw].[items] ([id], [name], [updated_at]) select [id], [name], [updated_at] from [dpone_staging].[items__c5b12e79928e]
commit transaction; set lock_timeout -1; exec sys.sp_set_session_context @key = N'dpone.finalize_at', @value = null;
