-- PLACEHOLDER on branch h16cc only: number 0013 belongs to the lead's migration. This file
-- exists so the numbering has no gap here; the merge keeps the lead's 0013 and drops this.
SELECT 1;
