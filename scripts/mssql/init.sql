-- The database the live suite (DPONE_MSSQL_URI) uses: snapshot isolation, Change Tracking and
-- CDC enabled at the database level (tables enable their own). Run by docker-compose's
-- mssql-init service once the server answers.
if db_id(N'dpone_test') is null create database dpone_test;
go
alter database dpone_test set allow_snapshot_isolation on;
go
if not exists (select 1 from sys.change_tracking_databases where database_id = db_id(N'dpone_test'))
  alter database dpone_test set change_tracking = on (change_retention = 2 days, auto_cleanup = on);
go
use dpone_test;
go
if (select is_cdc_enabled from sys.databases where name = N'dpone_test') = 0 exec sys.sp_cdc_enable_db;
go
