-- The queue's index goes: this engine keeps its queue in memory (store/sqlite/mirror.rs)
-- and reads its candidates and positions there, so nothing here queries jobs by
-- (state, owner, priority). The index still cost a page in every commit that adds a job
-- or changes its state: about 1 in 15 of the pages a submission writes and syncs.
-- PostgreSQL keeps it (replicas read the queue with SQL).

DROP INDEX IF EXISTS jobs_queue_owner;
