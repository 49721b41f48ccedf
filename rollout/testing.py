"""For a host's tests: TwinTestCase validates a twin against its function on the parameter sets given.

    class OpenTicketsTwinTest(TwinTestCase):
        query = "fn_open_tickets"
        cases = [{"client_id": 1}, {"client_id": 2}]

Each case runs both sides in one snapshot (rollout.validation) and must give equal answers.
"""

from django.test import TestCase

from rollout.validation import validate_query


class TwinTestCase(TestCase):
    query = None  # the registered query's name
    cases = ()  # parameter sets, as the query takes them

    def __init_subclass__(cls, **kwargs):
        # The test is added to subclasses only: this class, imported into a test module, collects nothing.
        super().__init_subclass__(**kwargs)
        cls.test_the_twin_gives_the_functions_answer = TwinTestCase._check

    def _check(self):
        self.assertTrue(self.cases, "give at least one parameter set in `cases`")
        report = validate_query(self.query, self.cases)
        self.assertEqual(report.different, 0, f"the twin differs from the function: {report.examples}")
        self.assertEqual(report.equal, len(self.cases))
