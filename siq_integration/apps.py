from django.apps import AppConfig


class SiqIntegrationConfig(AppConfig):
    name = "siq_integration"
    verbose_name = "SalesIQ integration"
