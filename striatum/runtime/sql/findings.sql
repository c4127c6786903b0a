-- last_review_round: a review's latest verdict event in a run (its type and data), the round a new verdict is compared with --
SELECT type, payload::jsonb -> 'data' FROM striatum.events
WHERE run_id = %(run)s AND job_id = %(job)s
  AND type IN ('job.reset', 'job.complete', 'job.fail', 'job.escalate')
ORDER BY seq DESC LIMIT 1;

-- run_review_rounds: the latest verdict event of each of these jobs of a run (its type and data) --
SELECT DISTINCT ON (job_id) job_id, type, payload::jsonb -> 'data' FROM striatum.events
WHERE run_id = %(run)s AND job_id = ANY(%(jobs)s)
  AND type IN ('job.reset', 'job.complete', 'job.fail', 'job.escalate')
ORDER BY job_id, seq DESC;

-- live_repeats: in live runs (of one repository when given), each review whose latest verdict event returned the same finding ids as the round before, with when --
SELECT run_id, job_id, type, data, created_at FROM (
    SELECT DISTINCT ON (e.run_id, e.job_id) e.run_id, e.job_id, e.type,
           e.payload::jsonb -> 'data' AS data, e.created_at
    FROM striatum.run_records r
    JOIN striatum.events e ON e.run_id = r.id
    WHERE r.status IN ('running', 'blocked')
      AND (%(repo)s::text IS NULL OR r.repo_path = %(repo)s)
      AND e.job_id IS NOT NULL
      AND e.type IN ('job.reset', 'job.complete', 'job.fail', 'job.escalate')
    ORDER BY e.run_id, e.job_id, e.seq DESC) latest
WHERE (data -> 'repeated') = 'true'::jsonb
ORDER BY created_at;
