//! Several routers on one PostgreSQL database, each a separate process of the real binary:
//! every row of issue 24's table. The database is a fresh one on the throwaway cluster
//! (`TEST_POSTGRES_URL`, or one started from the installed PostgreSQL); without PostgreSQL
//! these tests fail, never skip.

mod failures;
mod flows;
mod harness;
