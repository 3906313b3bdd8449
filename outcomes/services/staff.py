"""A clinic's staff, run by its admins: inviting a clinician or admin by a one-time link,
accepting it, changing a role, deactivating and reactivating an account, ending a colleague's
sessions, with the rule that a clinic always keeps one active admin. Every change is audited
(who, what, old and new).

Only a SHA-256 hash of an invitation's token is stored; the link carries the token after
``#`` (``/join#<token>``), so it reaches no server log.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import STAFF_ROLES, PasswordReset, StaffInvitation, User, utcnow
from . import audit
from .accounts import AccountError, checked_new_email, hash_password
from .audit import Actor
from .tokens import could_be_token, new_token, token_hash
from .user_sessions import end_sessions

#: How long a staff invitation link works. Local policy, shorter than a patient's (7 days):
#: the link makes an account that reads every patient of the clinic, and an admin sends it to
#: a colleague who can ask for another at once.
STAFF_INVITATION_LIFETIME = dt.timedelta(days=3)


class StaffAdminError(ValueError):
    """A change to the clinic's staff that cannot be made, with the reason (nothing changed)."""


@dataclass(frozen=True)
class IssuedStaffInvitation:
    invitation: StaffInvitation
    #: The secret part of the link. Shown once; only its hash is stored.
    token: str


def clinic_staff_member(session: Session, clinic_id: int, user_id: int) -> User | None:
    """A clinician or admin of the clinic (None for a patient's account, another clinic's
    account or a missing one, which the pages answer alike: 404)."""
    return session.scalar(select(User).where(User.id == user_id, User.clinic_id == clinic_id,
                                             User.role.in_(STAFF_ROLES)))


def open_staff_invitations(session: Session, clinic_id: int) -> list[StaffInvitation]:
    """The clinic's invitations neither used nor revoked (expired ones too: the page says
    so), newest first."""
    return list(session.scalars(
        select(StaffInvitation).where(StaffInvitation.clinic_id == clinic_id,
                                      StaffInvitation.used_at.is_(None),
                                      StaffInvitation.revoked_at.is_(None))
        .order_by(StaffInvitation.created_at.desc(), StaffInvitation.id.desc())))


def clinic_staff_invitation(session: Session, clinic_id: int,
                            invitation_id: int) -> StaffInvitation | None:
    """One of the clinic's staff invitations, whatever its state (None for another clinic's)."""
    return session.scalar(select(StaffInvitation).where(
        StaffInvitation.id == invitation_id, StaffInvitation.clinic_id == clinic_id))


def invite_staff(session: Session, actor: Actor, email: str, role: str,
                 lifetime: dt.timedelta = STAFF_INVITATION_LIFETIME) -> IssuedStaffInvitation:
    """A one-time link inviting ``email`` to the actor's clinic as a clinician or admin. An
    earlier open invitation of the address at this clinic stops working; an address that
    already has an account is refused."""
    if role not in STAFF_ROLES:
        raise StaffAdminError("Choose a role: clinician or admin.")
    try:
        email = checked_new_email(session, email)
    except AccountError as error:
        raise StaffAdminError(str(error)) from None
    clinic_id = actor.user.clinic_id
    now = utcnow()
    # This clinic's earlier link for the address, and any expired one elsewhere (dead already,
    # it would otherwise hold the address's one open invitation for good).
    replaced = list(session.scalars(
        update(StaffInvitation)
        .where(StaffInvitation.email == email, StaffInvitation.used_at.is_(None),
               StaffInvitation.revoked_at.is_(None),
               or_(StaffInvitation.clinic_id == clinic_id, StaffInvitation.expires_at <= now))
        .values(revoked_at=now).returning(StaffInvitation.id)
        .execution_options(synchronize_session=False)))
    token = new_token()
    invitation = StaffInvitation(clinic_id=clinic_id, email=email, role=role,
                                 token_hash=token_hash(token), created_by_id=actor.user.id,
                                 created_at=now, expires_at=now + lifetime)
    try:
        with session.begin_nested():
            session.add(invitation)
            session.flush()
    except IntegrityError:  # one open invitation per address: another clinic's is live
        raise StaffAdminError("This address has an open invitation to another clinic. It can "
                              "be invited once that one is used, revoked or expired.") from None
    audit.record(session, actor, "staff_invitation.issue", object_type="staff_invitation",
                 object_id=invitation.id, new={"email": email, "role": role},
                 details={"replaces": replaced} if replaced else None)
    return IssuedStaffInvitation(invitation=invitation, token=token)


def revoke_staff_invitation(session: Session, actor: Actor, invitation: StaffInvitation) -> bool:
    """Stop an open invitation's link (False when it was used or revoked already)."""
    revoked = session.execute(
        update(StaffInvitation)
        .where(StaffInvitation.id == invitation.id, StaffInvitation.used_at.is_(None),
               StaffInvitation.revoked_at.is_(None))
        .values(revoked_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if revoked:
        session.refresh(invitation)
        audit.record(session, actor, "staff_invitation.revoke", object_type="staff_invitation",
                     object_id=invitation.id, details={"email": invitation.email})
    return bool(revoked)


def usable_staff_invitation(session: Session, token: str,
                            lock: bool = False) -> StaffInvitation | None:
    """The invitation this token opens, if it is unused, not revoked and not expired; with
    ``lock``, its row is held until the transaction ends and read afresh."""
    if not could_be_token(token):
        return None
    found = select(StaffInvitation).where(StaffInvitation.token_hash == token_hash(token))
    if lock:
        found = found.with_for_update().execution_options(populate_existing=True)
    invitation = session.scalar(found)
    if invitation is None or invitation.used_at or invitation.revoked_at:
        return None
    return invitation if invitation.expires_at > utcnow() else None


def accept_staff_invitation(session: Session, actor: Actor, token: str, password: str) -> User:
    """The invitee's account, of the invitation's role at its clinic, with the password they
    chose (the app's rules: services.accounts). The link then stops working."""
    # Locked, so that two acceptances at once make one account (PostgreSQL; SQLite's writes
    # are serial): the second finds the link used.
    invitation = usable_staff_invitation(session, token, lock=True)
    if invitation is None:
        raise StaffAdminError("This invitation link no longer works. Ask your clinic's admin "
                              "for a new one.")
    try:
        user = User(clinic_id=invitation.clinic_id, email=checked_new_email(session,
                                                                            invitation.email),
                    role=invitation.role, password_hash=hash_password(password))
    except AccountError as error:
        raise StaffAdminError(str(error)) from None
    session.add(user)
    session.flush()
    invitation.used_at, invitation.user_id = utcnow(), user.id
    audit.record(session, Actor(user, actor.ip_address, actor.request_id),
                 "staff_invitation.accept", object_type="staff_invitation",
                 object_id=invitation.id, new={"user_id": user.id, "role": user.role})
    return user


def change_role(session: Session, actor: Actor, member: User, role: str) -> bool:
    """Make ``member`` a clinician or an admin (False when that is their role already). The
    clinic's last active admin keeps the role."""
    if role not in STAFF_ROLES:
        raise StaffAdminError("Choose a role: clinician or admin.")
    _refuse_own_account(actor, member, "change your own role")
    _lock_admins_and(session, member)
    old = member.role
    if old == role:
        return False
    if role != "admin":
        _keep_an_active_admin(session, member, "demoted")
    member.role = role
    audit.record(session, actor, "staff.role_change", object_type="user", object_id=member.id,
                 old={"role": old}, new={"role": role})
    return True


def set_active(session: Session, actor: Actor, member: User, active: bool) -> bool:
    """Deactivate or reactivate ``member``'s account (False when it is so already).
    Deactivating ends every open session of the account at once: each request checks its
    session against the database (services.user_sessions); and it stops the open links the
    account issued (``_revoke_links_issued_by``), audited with how many."""
    _refuse_own_account(actor, member, "deactivate your own account")
    _lock_admins_and(session, member)
    if member.active == active:
        return False
    revoked = None
    if not active:
        _keep_an_active_admin(session, member, "deactivated")
        end_sessions(session, member, "deactivated")
        revoked = _revoke_links_issued_by(session, member)
    member.active = active
    audit.record(session, actor, "staff.reactivate" if active else "staff.deactivate",
                 object_type="user", object_id=member.id,
                 old={"active": not active}, new={"active": active}, details=revoked)
    return True


def _revoke_links_issued_by(session: Session, member: User) -> dict[str, int]:
    """Stop the password resets ``member`` issued from patients' pages and the staff
    invitations they created, while still open: a link works for whoever holds it, and the
    person who left may keep a copy of it or of its QR code. How many of each."""
    now = utcnow()
    revoked = {}
    for name, link, issuer in (
            ("password_resets_revoked", PasswordReset, PasswordReset.issued_by_id),
            ("staff_invitations_revoked", StaffInvitation, StaffInvitation.created_by_id)):
        revoked[name] = session.execute(
            update(link).where(issuer == member.id, link.used_at.is_(None),
                               link.revoked_at.is_(None), link.expires_at > now)
            .values(revoked_at=now).execution_options(synchronize_session=False)).rowcount
    return revoked


def end_colleague_sessions(session: Session, actor: Actor, member: User) -> int:
    """An admin (``actor``) signs ``member`` out everywhere (a lost phone, a shared computer);
    audited with how many sessions ended. They can sign in again."""
    _refuse_own_account(actor, member, "end your own sessions here: your sessions page can")
    ended = end_sessions(session, member, "ended_by_admin")
    audit.record(session, actor, "staff.end_sessions", object_type="user", object_id=member.id,
                 details={"sessions_ended": ended})
    return ended


def _refuse_own_account(actor: Actor, member: User, what: str) -> None:
    if actor.user is not None and actor.user.id == member.id:
        raise StaffAdminError(f"You cannot {what}: another admin can.")


def _lock_admins_and(session: Session, member: User) -> None:
    """Hold the rows of the clinic's active admins and ``member``'s until the transaction
    ends, and read them afresh. Two admins demoting or deactivating each other at once then
    take turns, and the second sees the first's change (PostgreSQL's SELECT ... FOR UPDATE
    re-reads a row another transaction changed; SQLite's transactions are serial already).
    One statement locks them all, in id order, so no two such changes wait on each other."""
    session.scalars(
        select(User).where(User.clinic_id == member.clinic_id,
                           or_(User.id == member.id,
                               and_(User.role == "admin", User.active.is_(True))))
        .order_by(User.id).with_for_update(of=User)
        .execution_options(populate_existing=True)).all()


def _keep_an_active_admin(session: Session, member: User, change: str) -> None:
    """Refuse a change that would leave the clinic without an active admin."""
    if member.role != "admin" or not member.active:
        return
    others = session.scalar(
        select(User.id).where(User.clinic_id == member.clinic_id, User.role == "admin",
                              User.active.is_(True), User.id != member.id).limit(1))
    if others is None:
        raise StaffAdminError(f"{member.email} is the clinic's only active admin and cannot be "
                              f"{change}: make another admin first.")
