"""The search UI, a Gradio page served by `ume serve` and `ume demo`.

- `page`: the whole page (`build_ui`) and serving it (`launch`);
- `search_tab`, `traces_tab`, `index_tab`: one tab each, its layout (`build_*_tab`) and handlers;
- `live`: what an open page keeps current (banners, counts, folders, modes, the Index tab);
- `page_load`: what a fresh page fills in (every live part, and the controls of its deep link);
- `index_view`: the Index tab's tables and lines, for jobs from every source;
- `examples`: the example queries a model ships with, as buttons that search;
- `detail`: the pane showing one item, its media and the model's reasoning;
- `display_media`: gallery tiles and originals, decoded by `model.media`;
- `controls`: choices and status lines the tabs share;
- `date_controls`: the Search tab's date range and order;
- `context`: what every part shares (`AppContext`: the search service, served files, problems);
- `assets`: the page's theme, CSS and browser scripts.

Import `build_ui` and `launch` from `app.ui.page`: this package stays empty so that the command
line, which needs only `app.context`, does not load Gradio at startup.
"""
