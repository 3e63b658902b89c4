from django.apps import AppConfig


class VideosConfig(AppConfig):
    name = "academy.videos"
    label = "videos"

    def ready(self) -> None:
        from academy.videos.jobs import VideoJob
        from jobbox import registry

        registry.register(VideoJob())
