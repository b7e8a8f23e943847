"""Out-of-range date filters on the history pages and their CSVs (issue 13, "Operations").

The attack: ``?to=9999-12-31`` or ``?from=0001-01-01&tz=840`` on /audit/, /alerts/ and both
CSVs answered 500 (OverflowError). Now the page shows the filter form with the problem
beside the field, and a CSV is a 400 with a sentence.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from dashboard.models import Profile, Role

pytestmark = pytest.mark.django_db

PAGES = ["/audit/", "/alerts/"]
CSVS = ["/audit.csv", "/alerts.csv"]
OUT_OF_RANGE = [
    "to=9999-12-31",
    "from=0001-01-01&tz=840",
    "from=0001-01-01&tz=Pacific/Kiritimati",
    "to=0001-01-01",
    "to=9999-12-31T23:59",
    "from=9999-12-31T23:30&tz=America/Los_Angeles",
    "from=0001-01-01T00:00:00%2B14:00",
    "to=9999-12-31T23:59:59.999999-12:00",
]
WORDS = "Out of range: pick a date from the year 2000 to 2100."


@pytest.fixture
def admin() -> Client:
    user = get_user_model().objects.create_user("olivia", password="a-long-test-password")
    Profile.objects.create(user=user, role=Role.ADMIN)
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


@pytest.mark.parametrize("query", OUT_OF_RANGE)
@pytest.mark.parametrize("path", PAGES)
def test_the_page_shows_an_out_of_range_date_beside_its_field(admin, path, query):
    response = admin.get(f"{path}?{query}")
    assert response.status_code == 200
    page = response.content.decode()
    assert f'<span class="error-text">{WORDS}</span>' in page


@pytest.mark.parametrize("query", OUT_OF_RANGE)
@pytest.mark.parametrize("path", CSVS)
def test_the_csv_refuses_an_out_of_range_date_in_a_sentence(admin, path, query):
    response = admin.get(f"{path}?{query}")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert WORDS in response.content.decode()


@pytest.mark.parametrize("path", PAGES + CSVS)
def test_dates_in_range_still_filter(admin, path):
    response = admin.get(f"{path}?from=2000-01-01&to=2100-12-31&tz=Pacific/Kiritimati")
    assert response.status_code == 200
    if path in PAGES:
        assert WORDS not in response.content.decode()
    else:
        assert response["Content-Type"].startswith("text/csv")
