"""safemt.moderation"""
