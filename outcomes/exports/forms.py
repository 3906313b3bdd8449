"""The export forms. The choices come from the export service, so the page offers exactly
what the service can make."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional

import instruments

from ..forms import ClinicDate
from ..services.exports import KINDS, kinds_for

DEIDENTIFIED_LABEL = ("De-identified: pseudonyms instead of identifiers and emails, days since "
                      "the first infusion instead of dates, no free text")


class CsvExportForm(FlaskForm):
    kind = SelectField("What to export")
    date_from = DateField("From (clinic date, optional)",
                          validators=[Optional(), ClinicDate("The first day")])
    date_to = DateField("To (clinic date, optional)",
                        validators=[Optional(), ClinicDate("The last day")])
    patient = StringField("Only the patient with this clinic identifier (optional)",
                          validators=[Optional(), Length(max=64)])
    instrument = SelectField("Only this questionnaire")
    deidentified = BooleanField(DEIDENTIFIED_LABEL)


def csv_export_form(role: str, timezone: str) -> CsvExportForm:
    """The CSV form for a staff member of a clinic in ``timezone``: the audit trail is offered
    to admins only; the dates are the clinic's."""
    form = CsvExportForm(meta={"timezone": timezone})
    form.kind.choices = [SelectChoice(kind, KINDS[kind].label) for kind in kinds_for(role)]
    form.instrument.choices = [SelectChoice("", "All questionnaires")] + [
        SelectChoice(instrument.key, instrument.title) for instrument in instruments.all()]
    return form


class FhirExportForm(FlaskForm):
    deidentified = BooleanField("De-identified: a pseudonym instead of the patient's name and "
                                "identifier (dates stay real)")
