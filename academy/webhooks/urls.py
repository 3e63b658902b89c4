from django.urls import path

from academy.webhooks import views

urlpatterns = [
    path("api/webhooks/", views.WebhookListView.as_view(), name="webhooks"),
    path("api/webhooks/<str:endpoint_id>/", views.WebhookDetailView.as_view(),
         name="webhook-detail"),
    path("api/webhooks/<str:endpoint_id>/secret/", views.WebhookSecretView.as_view(),
         name="webhook-secret"),
    path("api/webhooks/<str:endpoint_id>/enable/", views.WebhookEnableView.as_view(),
         name="webhook-enable"),
    path("api/webhooks/<str:endpoint_id>/deliveries/", views.WebhookDeliveriesView.as_view(),
         name="webhook-deliveries"),
]
