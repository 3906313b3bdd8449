"""The clinic's staff, for its admins, on the clinician blueprint: who works here (role,
active, second factor), inviting a clinician or admin by a one-time link, changing a role,
deactivating and reactivating an account, signing a colleague out everywhere, and the open
invitations. Clinicians get 404, as for every page of another audience."""
from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from ..auth.access import roles_required
from ..auth.one_time_links import one_time_link
from ..extensions import db
from ..models import User, utcnow
from ..services.patients import clinic_staff
from ..services.staff import (
    STAFF_INVITATION_LIFETIME,
    StaffAdminError,
    change_role,
    clinic_staff_invitation,
    clinic_staff_member,
    end_colleague_sessions,
    invite_staff,
    open_staff_invitations,
    revoke_staff_invitation,
    set_active,
)
from ..web import current_actor
from .forms import (
    InviteStaffForm,
    RevokeStaffInvitationForm,
    StaffActiveForm,
    StaffMemberForm,
    StaffRoleForm,
)
from .views import bp

admin_required = roles_required("admin")
INCOMPLETE = "The form was incomplete. Reload the page and try again; nothing was changed."
NOTHING_CHANGED = "Nothing was changed."


@bp.get("/staff")
@admin_required
def staff() -> str:
    """The clinic's staff and open invitations, with the invitation form."""
    return _staff_page(InviteStaffForm(formdata=None))


@bp.post("/staff/invite")
@admin_required
def invite_staff_member() -> str | tuple[str, int]:
    form = InviteStaffForm()
    if form.validate_on_submit():
        try:
            issued = invite_staff(db.session, current_actor(), form.email.data, form.role.data)
        except StaffAdminError as error:
            form.email.errors = [*form.email.errors, str(error)]
        else:
            link, qr = one_time_link("auth.open_staff_invitation", issued.token)
            return render_template("clinician/staff_invitation.html",
                                   invitation=issued.invitation, link=link, qr=qr)
    return _staff_page(form), 422


@bp.post("/staff/role")
@admin_required
def change_staff_role() -> Response | tuple[str, int]:
    form = StaffRoleForm()

    def change() -> str:
        member = _member_or_404(form)
        if not change_role(db.session, current_actor(), member, form.role.data):
            return NOTHING_CHANGED
        return f"{member.email} is now {'an admin' if member.role == 'admin' else 'a clinician'}."
    return _staff_change(form, change)


@bp.post("/staff/active")
@admin_required
def set_staff_active() -> Response | tuple[str, int]:
    form = StaffActiveForm()

    def change() -> str:
        member = _member_or_404(form)
        active = form.active.data == "on"
        if not set_active(db.session, current_actor(), member, active):
            return NOTHING_CHANGED
        if active:
            return f"{member.email} can sign in again."
        return (f"{member.email} is deactivated: their open sessions have ended and they "
                "cannot sign in.")
    return _staff_change(form, change)


@bp.post("/staff/end-sessions")
@admin_required
def end_staff_sessions() -> Response | tuple[str, int]:
    form = StaffMemberForm()

    def change() -> str:
        member = _member_or_404(form)
        end_colleague_sessions(db.session, current_actor(), member)
        return f"{member.email} is signed out everywhere: their next page asks them to sign in."
    return _staff_change(form, change)


@bp.post("/staff/invitations/revoke")
@admin_required
def revoke_staff_invitation_link() -> Response | tuple[str, int]:
    form = RevokeStaffInvitationForm()

    def change() -> str:
        invitation = clinic_staff_invitation(db.session, current_user.clinic_id,
                                             form.invitation_id.data)
        if invitation is None:
            abort(404)
        if not revoke_staff_invitation(db.session, current_actor(), invitation):
            return "That invitation was already used or revoked."
        return f"The invitation to {invitation.email} no longer works."
    return _staff_change(form, change)


def _staff_change(form: FlaskForm, change: Callable[[], str]) -> Response | tuple[str, int]:
    """What every change on the staff page does around its own ``change`` (which loads what
    it changes, answering 404 for another clinic's, and returns what to tell the admin): an
    incomplete form, or a change the rules refuse (``StaffAdminError``), is answered on the
    staff page with a 422 and changes nothing; otherwise the admin is told and sent back."""
    if not form.validate_on_submit():
        return _staff_page(InviteStaffForm(formdata=None), INCOMPLETE), 422
    try:
        told = change()
    except StaffAdminError as error:
        return _staff_page(InviteStaffForm(formdata=None), str(error)), 422
    flash(told, "info")
    return redirect(url_for("clinician.staff"), 303)


def _member_or_404(form: StaffMemberForm) -> User:
    member = clinic_staff_member(db.session, current_user.clinic_id, form.user_id.data)
    if member is None:
        abort(404)
    return member


def _staff_page(invite_form: InviteStaffForm, problem: str | None = None) -> str:
    return render_template(
        "clinician/staff.html", members=clinic_staff(db.session, current_user.clinic_id),
        invitations=open_staff_invitations(db.session, current_user.clinic_id),
        invite_form=invite_form, problem=problem, now=utcnow(),
        lifetime_days=STAFF_INVITATION_LIFETIME.days)
