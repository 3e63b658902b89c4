from django.apps import AppConfig


class AIConfig(AppConfig):
    name = "academy.ai"
    label = "ai"
    verbose_name = "AI jobs"

    def ready(self) -> None:
        from academy.ai import job_types
        from academy.ai.job_types.grade_report import GradeReport
        from academy.ai.tracking import AIJobTracking
        from jobbox import register

        register(AIJobTracking())
        # Adding a job type is one line here and a module in job_types/; the worker is generic.
        job_types.register(GradeReport())
