"""The Diagnostics capability: facts about this computer, collected with consent."""
