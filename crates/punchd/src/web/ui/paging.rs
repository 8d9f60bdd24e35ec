//! Pagination for the long lists of the HR pages (employees, the month grid, the audit log): which slice of a
//! list one page shows, and the "previous / next" links under it. Pure; no IO.

use maud::{html, Markup};

/// One page of a list: 1-based page number and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pager {
    /// The page shown, 1-based (clamped to the pages there are).
    pub page: usize,
    /// Items per page.
    pub per_page: usize,
    /// Items in the whole list.
    pub total: usize,
}

impl Pager {
    /// The page `page` (1-based; 0 or past the end is clamped) of a list of `total` items, `per_page` a page.
    pub fn new(page: usize, per_page: usize, total: usize) -> Pager {
        let per_page = per_page.max(1);
        let pages = total.div_ceil(per_page).max(1);
        Pager {
            page: page.clamp(1, pages),
            per_page,
            total,
        }
    }

    /// How many pages there are (at least 1).
    pub fn pages(&self) -> usize {
        self.total.div_ceil(self.per_page).max(1)
    }

    /// The index range of the items on this page.
    pub fn range(&self) -> std::ops::Range<usize> {
        let start = ((self.page - 1) * self.per_page).min(self.total);
        start..(start + self.per_page).min(self.total)
    }

    /// "Previous / page n of m / next" links; `href(page)` builds the link of a page.
    pub fn links(&self, href: impl Fn(usize) -> String) -> Markup {
        let range = self.range();
        html! {
            nav.pager aria-label="Pages" {
                @if self.page > 1 {
                    a href=(href(1)) { "« First" } " "
                    a href=(href(self.page - 1)) rel="prev" { "‹ Previous" } " "
                }
                span {
                    "Page " (self.page) " of " (self.pages())
                    @if self.total > 0 { " (" (range.start + 1) "–" (range.end) " of " (self.total) ")" }
                }
                @if self.page < self.pages() {
                    " " a href=(href(self.page + 1)) rel="next" { "Next ›" }
                    " " a href=(href(self.pages())) { "Last »" }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pager;

    #[test]
    fn pages_clamp_and_slice() {
        let p = Pager::new(3, 50, 120);
        assert_eq!((p.page, p.pages(), p.range()), (3, 3, 100..120));
        assert_eq!(Pager::new(9, 50, 120).page, 3);
        assert_eq!(Pager::new(0, 50, 120).range(), 0..50);
        let empty = Pager::new(1, 50, 0);
        assert_eq!((empty.pages(), empty.range()), (1, 0..0));
    }

    #[test]
    fn links_name_the_slice() {
        let html = Pager::new(2, 10, 25)
            .links(|n| format!("?page={n}"))
            .into_string();
        assert!(html.contains("Page 2 of 3 (11–20 of 25)"), "{html}");
        assert!(html.contains("href=\"?page=1\" rel=\"prev\""), "{html}");
        assert!(html.contains("href=\"?page=3\" rel=\"next\""), "{html}");
    }
}
