-- stats_verdicts: every verdict of the reviews of the runs (of one repository when given), with the review's lane and its run's workflow, in order --
SELECT v.run_id, v.job_id, j.lane, r.workflow_digest, v.verdict, v.created_at
FROM striatum.verdicts v
JOIN striatum.jobs j ON j.run_id = v.run_id AND j.job_id = v.job_id
JOIN striatum.run_records r ON r.id = v.run_id
WHERE (%(repo)s::text IS NULL OR r.repo_path = %(repo)s)
ORDER BY v.run_id, v.job_id, v.iteration;

-- stats_jobs: every job of the runs (of one repository when given) with a review or a checkpoint: its lane, kind, status, choice, and when its first lease began and it last changed --
SELECT j.run_id, j.job_id, j.lane, j.kind, j.status, j.chosen, j.updated_at,
       (SELECT min(l.acquired_at) FROM striatum.leases l
        WHERE l.run_id = j.run_id AND l.job_id = j.job_id) AS started_at
FROM striatum.jobs j
JOIN striatum.run_records r ON r.id = j.run_id
WHERE (%(repo)s::text IS NULL OR r.repo_path = %(repo)s)
  AND EXISTS (SELECT 1 FROM striatum.jobs k
              WHERE k.run_id = j.run_id AND k.kind IN ('review', 'checkpoint'))
ORDER BY j.run_id, j.position;
