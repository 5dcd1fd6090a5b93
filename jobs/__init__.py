"""Asset jobs, schedules and sensors."""

from jobs.chains import batch_chain_job
from jobs.golden_noise import golden_noise_job, workbench_selections_sensor
from jobs.inbox import prompt_inbox_sensor

ALL_JOBS = [batch_chain_job, golden_noise_job]
ALL_SCHEDULES: list = []
ALL_SENSORS = [prompt_inbox_sensor, workbench_selections_sensor]
