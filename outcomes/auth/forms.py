from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, IntegerField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length
from wtforms.widgets import HiddenInput

from ..services.accounts import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from ..services.passkeys import MAX_NAME_LENGTH as MAX_PASSKEY_NAME_LENGTH


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired("Enter your email address."),
                                            Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired("Enter your password."),
                                                     Length(max=MAX_PASSWORD_LENGTH)])


class OpenInvitationForm(FlaskForm):
    """The invitation's token, posted: it travels in the link's fragment, never in a URL the
    server (or its access log) sees. The page's script fills it in from the link."""

    token = StringField("Invitation code (the part of your link after #)",
                        validators=[DataRequired("Enter the code from your invitation link."),
                                    Length(max=128)])


class AcceptInvitationForm(FlaskForm):
    token = HiddenField(validators=[DataRequired(), Length(max=128)])
    email = EmailField(
        "Your email address (you will use it to sign in)",
        validators=[DataRequired("Enter your email address."),
                    Email("Enter a valid email address."), Length(max=254)],
    )
    password = PasswordField(
        f"Choose a password (at least {MIN_PASSWORD_LENGTH} characters)",
        validators=[
            DataRequired("Choose a password."),
            Length(min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH,
                   message=f"The password must have {MIN_PASSWORD_LENGTH} to "
                           f"{MAX_PASSWORD_LENGTH} characters."),
        ],
    )
    confirm = PasswordField(
        "Type the password again",
        validators=[DataRequired("Type the password again."),
                    EqualTo("password", "The two passwords do not match.")],
    )


class QuestionnaireLinkForm(FlaskForm):
    """A reminder's link, posted by a tap on its page's button (never by opening the link,
    which mail scanners do). The token travels in the link's fragment; the page's script
    puts it here."""

    token = HiddenField(validators=[DataRequired(), Length(max=128)])


class ForgotPasswordForm(FlaskForm):
    """The address to send a password-reset link to (if an account has it)."""

    email = EmailField("Your email address",
                       validators=[DataRequired("Enter your email address."),
                                   Email("Enter a valid email address."), Length(max=254)])


class OpenPasswordResetForm(FlaskForm):
    """A reset link's token, posted by its page's script from the link's fragment (never in a
    URL the server sees); without script, typed."""

    token = StringField("Reset code (the part of your link after #)",
                        validators=[DataRequired("Enter the code from your reset link."),
                                    Length(max=128)])


class ConfirmContactForm(FlaskForm):
    """A new contact address's link (auth/contacts.py): its token, which the page's script
    fills in from after ``#``; without script, typed."""

    token = StringField("Code from your link (the part after #)", validators=[
        DataRequired("Enter the code from the end of your link, or open the link again."),
        Length(max=128, message="That is longer than any code: open the link again.")])


class NewPasswordForm(AcceptInvitationForm):
    """The new password, chosen through a reset link: the invitation's password rules and
    fields, without its email (the account has one)."""

    email = None


class SecondFactorForm(FlaskForm):
    """The second step of a staff sign-in: the authenticator's code, or a recovery code."""

    code = StringField("Code from your authenticator app, or a recovery code",
                       validators=[DataRequired("Enter the code."), Length(max=32)])


class EnrolAuthenticatorForm(FlaskForm):
    """The first code of a new authenticator, which shows the app has its secret."""

    code = StringField("The 6-digit code your app shows now",
                       validators=[DataRequired("Enter the code your app shows."),
                                   Length(max=32)])


class ConfirmIdentityForm(FlaskForm):
    """Re-authentication before a change of sign-in factors."""

    secret = PasswordField("Your password, or the code your authenticator app shows now",
                           validators=[DataRequired("Enter your password or a code."),
                                       Length(max=MAX_PASSWORD_LENGTH)])


class ResetFactorsForm(FlaskForm):
    """An admin resets a colleague's authenticator and recovery codes."""

    user_id = IntegerField(widget=HiddenInput(), validators=[DataRequired()])


#: An authenticator's answer as the browser gives it (JSON): a few hundred bytes, a few
#: thousand with an attestation certificate chain.
MAX_CREDENTIAL_LENGTH = 20_000


class NewPasskeyForm(FlaskForm):
    """A new passkey's name, given before the authenticator makes it (the page's script then
    asks the browser for it: static/js/passkeys.js)."""

    name = StringField("A name for this passkey, such as “Work laptop” or “Phone”",
                       validators=[DataRequired("Give the passkey a name."),
                                   Length(max=MAX_PASSKEY_NAME_LENGTH,
                                          message=f"Use at most {MAX_PASSKEY_NAME_LENGTH} "
                                                  "characters.")])


class RenamePasskeyForm(FlaskForm):
    """A new name for one of one's passkeys."""

    passkey_id = IntegerField(widget=HiddenInput(), validators=[DataRequired()])
    name = NewPasskeyForm.name


class RemovePasskeyForm(FlaskForm):
    """One of one's passkeys, to remove."""

    passkey_id = IntegerField(widget=HiddenInput(), validators=[DataRequired()])


class PasskeyAnswerForm(FlaskForm):
    """The browser's answer (JSON) from an authenticator: a new passkey, or a passkey's
    signature at the second step of signing in."""

    credential = HiddenField(validators=[DataRequired("The passkey did not answer: try again."),
                                         Length(max=MAX_CREDENTIAL_LENGTH)])
