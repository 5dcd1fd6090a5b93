"""Every job, schedule and sensor of the code location, in one list each."""


from aesthetic_platform.jobs.automation import eager_re_evaluation_sensor
from aesthetic_platform.jobs.chains import (
    candidate_chain_job,
    judging_chain_job,
    pair_dataset_job,
    train_and_evaluate_job,
    weekly_retrain_schedule,
)
from aesthetic_platform.jobs.characters import characters_job
from aesthetic_platform.jobs.embeddings import classifier_sweep_sensor, embedding_classifier_job
from aesthetic_platform.jobs.golden_noise import golden_noise_job, workbench_selections_sensor
from aesthetic_platform.jobs.inbox import prompt_inbox_sensor
from aesthetic_platform.jobs.ingest import crawl_job, incremental_crawl_schedule
from aesthetic_platform.jobs.lora import lora_dataset_job, lora_uploads_sensor

ALL_JOBS = [candidate_chain_job, judging_chain_job, pair_dataset_job, train_and_evaluate_job, golden_noise_job]
ALL_SCHEDULES = [weekly_retrain_schedule]
ALL_SENSORS = [prompt_inbox_sensor, workbench_selections_sensor, eager_re_evaluation_sensor]
ALL_JOBS += [crawl_job]
ALL_SCHEDULES += [incremental_crawl_schedule]
ALL_JOBS += [embedding_classifier_job]
ALL_SENSORS += [classifier_sweep_sensor]
ALL_JOBS += [lora_dataset_job]
ALL_SENSORS += [lora_uploads_sensor]
ALL_JOBS += [characters_job]
