-- Whether the job's adapter is deployed (a Deploy staged with the job's TrainingCompleted) once it succeeds: set
-- for jobs created through the OpenAI fine-tuning API while MODELOPS_GATEWAY_DEPLOY_FINE_TUNED is on.
ALTER TABLE jobs ADD COLUMN deploy_when_completed boolean NOT NULL DEFAULT false;
