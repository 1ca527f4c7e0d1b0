"""The pages blueprint: the login page and the pages of a logged-in user."""

from __future__ import annotations

from quart import Blueprint, current_app, redirect

from .web import WORKBOOK_RE, current_user, owns, page, problem

blueprint = Blueprint("pages", __name__)


@blueprint.get("/")
async def index():
    if await current_user() is not None:
        return redirect("/welcome", 303)
    return await current_app.send_static_file("login.html")


@blueprint.get("/welcome")
@page
async def welcome():
    return await current_app.send_static_file("welcome.html")


@blueprint.get("/workbooks")
@page
async def workbook_list():
    return await current_app.send_static_file("workbooks.html")


@blueprint.get("/workbooks/<workbook>")
@page
async def workbook_page(workbook: str):
    user = await current_user()
    if not WORKBOOK_RE.match(workbook) or not await owns(user.id, workbook):
        return problem(404, "not_found", "There is no such workbook.",
                       title="Workbook not found", href="/workbooks",
                       link="Back to your workbooks")
    return await current_app.send_static_file("workbook.html")
